#include "bulk_copy.hpp"

#include "source.hpp"

extern "C" {
#include "utils/acl.h"
#include "utils/rls.h"
}

#include <string>
#include <vector>

namespace sicoop {

namespace {

// COPY FROM's data-source callback has no user argument: the stream being read is here.
struct CopyStream {
    PGconn* conn;
    char* buffer;  // the current CopyData message (libpq's memory)
    int length;
    int offset;
    bool done;
};
CopyStream stream;

void release_buffer() {
    if (stream.buffer) PQfreemem(stream.buffer);
    stream.buffer = nullptr;
    stream.length = stream.offset = 0;
}

[[noreturn]] void source_error(PGconn* conn, PGresult* res, const char* what);

// Waits for the next CopyData message without blocking interrupts (pg_cancel_backend works).
bool next_message() {
    release_buffer();
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        char* buf = nullptr;
        int n = PQgetCopyData(stream.conn, &buf, 1 /* async */);
        if (n > 0) {
            stream.buffer = buf;
            stream.length = n;
            stream.offset = 0;
            return true;
        }
        if (n == -1) return false;  // end of the copy
        if (n == -2) source_error(stream.conn, PQgetResult(stream.conn), "finish the copy");
        (void) WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_EXIT_ON_PM_DEATH,
                                 PQsocket(stream.conn), -1L, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        if (PQconsumeInput(stream.conn) == 0) source_error(stream.conn, nullptr, "read the copy");
    }
}

// Hands COPY FROM at least minread bytes (fewer only at the end of the stream).
extern "C" int read_source_stream(void* outbuf, int minread, int maxread) {
    int copied = 0;
    while (copied < minread && !stream.done) {
        if (stream.offset >= stream.length && !next_message()) {
            stream.done = true;
            break;
        }
        int n = Min(stream.length - stream.offset, maxread - copied);
        memcpy(static_cast<char*>(outbuf) + copied, stream.buffer + stream.offset, n);
        stream.offset += n;
        copied += n;
    }
    return copied;
}

// Foreign table sicoop.<name>'s remote schema and table, as connect_source() set them.
void remote_name(const char* foreign_table, char** schema, char** table) {
    Oid relid = get_relname_relid(foreign_table, get_namespace_oid("sicoop", false));
    if (!OidIsValid(relid)) elog(ERROR, "sicoop: foreign table sicoop.%s is missing", foreign_table);
    ForeignTable* ft = GetForeignTable(relid);
    *schema = pstrdup("public");
    *table = pstrdup(foreign_table);
    ListCell* lc;
    foreach (lc, ft->options) {
        DefElem* d = lfirst_node(DefElem, lc);
        if (strcmp(d->defname, "schema_name") == 0) *schema = defGetString(d);
        if (strcmp(d->defname, "table_name") == 0) *table = defGetString(d);
    }
}

// A SQL-side value as text, through SPI with the run's parameters (NULL -> nullptr).
char* spi_text_value(const char* sql, const spi::RunParams& params) {
    spi::execute_with_run_params(sql, params);
    if (SPI_processed != 1) elog(ERROR, "sicoop: could not evaluate: %s", sql);
    return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

// Raises the error of a failed source statement, saying what really happened: the connection
// lost (the source session terminated, the server gone), the statement cancelled by
// sicoop.source_timeout (or by someone at the source), a lock held there past it, or a refusal.
// `res` may be null (no result came back).
[[noreturn]] void source_error(PGconn* conn, PGresult* res, const char* what) {
    const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    char* detail = pchomp(res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res) : PQerrorMessage(conn));
    const bool lost = PQstatus(conn) == CONNECTION_BAD || (state && strncmp(state, "57P", 3) == 0);
    PQclear(res);
    if (lost)
        ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
                        errmsg("sicoop: the connection to the source was lost while trying to %s", what),
                        errdetail_internal("%s", detail)));
    if (state && strcmp(state, "55P03") == 0)
        ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
                        errmsg("sicoop: trying to %s, the source waited for a lock longer than sicoop.source_timeout (%d ms)",
                               what, source_timeout_setting),
                        errdetail_internal("%s", detail),
                        errhint("A session at the source holds a lock on the table: see pg_locks there.")));
    if (state && strcmp(state, "57014") == 0)
        ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
                        errmsg("sicoop: trying to %s, the source cancelled the statement: it ran longer than "
                               "sicoop.source_timeout (%d ms), or was cancelled there", what, source_timeout_setting),
                        errdetail_internal("%s", detail)));
    ereport(ERROR, (errcode(ERRCODE_CONNECTION_EXCEPTION), errmsg("sicoop: the source refused to %s", what),
                    errdetail_internal("%s", detail)));
    pg_unreachable();
}

// Runs a simple statement on the source and returns its first value (palloc'd), or nullptr.
char* remote_value(PGconn* conn, const char* sql, const char* what) {
    PGresult* res = libpqsrv_exec(conn, sql, PG_WAIT_EXTENSION);
    if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) source_error(conn, res, what);
    char* value = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? pstrdup(PQgetvalue(res, 0, 0)) : nullptr;
    PQclear(res);
    return value;
}

// The source session of the table being loaded: every copy of one source table in a step reads
// the same snapshot (one REPEATABLE READ transaction), so the rows, the re-read keys, the day
// totals and the snapshot recorded for the next run agree with each other.
struct SourceSession {
    PGconn* conn = nullptr;
    std::string source_table;      // foreign table (src_*)
    std::string snapshot_xmin;     // the snapshot's xmin, recorded in source_sync at the end
    std::string watermark;         // movements: the latest movement time in the snapshot
    bool has_watermark = false;
    bool record_snapshot = false;
};
SourceSession session;

// Ends the session: closes the source transaction and records what the next run starts from.
void finish_session() {
    if (session.conn == nullptr) return;
    remote_value(session.conn, "COMMIT", "commit");
    if (session.record_snapshot) {
        Oid argtypes[3] = {TEXTOID, INT8OID, TEXTOID};
        Datum args[3] = {CStringGetTextDatum(session.source_table.c_str()),
                         DirectFunctionCall1(int8in, CStringGetDatum(session.snapshot_xmin.c_str())),
                         session.has_watermark ? CStringGetTextDatum(session.watermark.c_str()) : (Datum) 0};
        const char nulls[3] = {' ', ' ', session.has_watermark ? ' ' : 'n'};
        if (SPI_execute_with_args("INSERT INTO sicoop.source_sync (table_name, snapshot_xmin, watermark)"
                                  " VALUES ($1, $2, $3::timestamp)"
                                  " ON CONFLICT (table_name) DO UPDATE"
                                  " SET snapshot_xmin = EXCLUDED.snapshot_xmin, copied_at = now(),"
                                  " watermark = coalesce(EXCLUDED.watermark, source_sync.watermark)",
                                  3, argtypes, args, nulls, false, 0) != SPI_OK_INSERT)
            elog(ERROR, "sicoop: could not record the source snapshot");
    }
    libpqsrv_disconnect(session.conn);
    session = SourceSession{};
}

// Opens the session of a source table (ending another table's first).
void open_session(const BulkCopy& copy, const char* remote) {
    if (session.conn != nullptr && session.source_table == copy.source_table) return;
    finish_session();
    PGconn* conn = source::open_connection();
    session.conn = conn;
    session.source_table = copy.source_table;
    remote_value(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "open a transaction");
    // The table's definition holds until the session ends (as pg_dump holds its tables): the
    // catalog the first copy reads is the one every later copy's casts rely on, so a column
    // altered at the source in between cannot be cut or rounded on its way into raw. Waits at
    // most sicoop.source_timeout behind a DDL that holds the table.
    remote_value(conn, psprintf("LOCK TABLE %s IN ACCESS SHARE MODE", remote), "lock the table against changes to its definition");
    char* xmin = remote_value(conn, "SELECT txid_snapshot_xmin(txid_current_snapshot())::text", "report its snapshot");
    session.snapshot_xmin = xmin ? xmin : "0";
    if (!copy.watermark_column.empty()) {
        char* watermark = remote_value(
            conn, psprintf("SELECT max(%s)::text FROM %s", quote_identifier(copy.watermark_column.c_str()), remote),
            "report its latest movement time");
        session.has_watermark = watermark != nullptr;
        if (watermark) session.watermark = watermark;
    }
}

// Whether a text[] literal holds a NULL element (a key that is NULL: matched with IS NULL).
bool has_null_element(const char* array_literal) {
    Oid argtypes[1] = {TEXTOID};
    Datum args[1] = {CStringGetTextDatum(array_literal)};
    if (SPI_execute_with_args("SELECT array_position($1::text[], NULL) IS NOT NULL", 1, argtypes, args, nullptr, true, 1) !=
            SPI_OK_SELECT ||
        SPI_processed != 1)
        elog(ERROR, "sicoop: could not read a key list");
    bool isnull = false;
    return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

void run_local(const char* sql) {
    int rc = SPI_execute(sql, false, 0);
    if (rc != SPI_OK_UTILITY && rc != SPI_OK_DELETE) elog(ERROR, "sicoop: %s failed", sql);
}

}  // namespace

void end_source_session() {
    pg_call([] { finish_session(); });
}

void abort_source_session() {
    if (session.conn == nullptr) return;
    PGconn* conn = session.conn;
    session = SourceSession{};
    release_buffer();
    stream = CopyStream{};
    // A statement still running on the source (a COPY, or one waiting on a lock) is cancelled
    // there too, not left to run on after the run has given up.
    if (PQtransactionStatus(conn) == PQTRANS_ACTIVE) {
        if (PGcancel* cancel = PQgetCancel(conn)) {
            char errbuf[256];
            (void) PQcancel(cancel, errbuf, sizeof errbuf);
            PQfreeCancel(cancel);
        }
    }
    PQfinish(conn);
}

int64 bulk_copy(const BulkCopy& copy, const spi::RunParams& params) {
    // The remote query, from the extension's own column list; names quoted all the same.
    std::string select_list;
    const std::string key = copy.key_column;
    if (copy.rows == BulkCopy::Rows::KeyChecksums) {
        select_list = key_bucket_sql(key) + "::int, count(*)::bigint, sum(" + key_hash_sql(key) + ")::numeric";
    } else if (copy.rows == BulkCopy::Rows::KeysInBuckets) {
        select_list = key + "::text";
    } else if (copy.rows == BulkCopy::Rows::RowChecksumsAndDayTotals) {
        // One scan of the source for both: grouping sets, told apart by GROUPING().
        select_list = "GROUPING(b, d)::int, b, d, count(*)::bigint, sum(h)::numeric, coalesce(sum(v), 0)::numeric FROM (SELECT " +
                      row_bucket_sql(key, copy.bucket_bits) + " AS b, " + copy.window_column + "::date AS d, " + copy.row_hash +
                      " AS h, valor_movimentacao::numeric AS v";
    } else if (copy.rows == BulkCopy::Rows::RowChecksums) {
        select_list = row_bucket_sql(key, copy.bucket_bits) + "::int, count(*)::bigint, sum(" + copy.row_hash + ")::numeric";
    } else if (copy.rows == BulkCopy::Rows::DayTotals) {
        select_list = copy.window_column + "::date, count(*)::bigint, coalesce(sum(valor_movimentacao::numeric), 0)::numeric";
    } else if (copy.rows != BulkCopy::Rows::ColumnTypes) {
        if (copy.types.size() != copy.columns.size()) throw std::logic_error("bulk copy of " + copy.source_table + ": one type per column");
        for (size_t i = 0; i < copy.columns.size(); ++i)
            select_list += (i ? ", " : "") + copy.columns[i] + "::" + copy.types[i];
    }
    std::vector<std::string> target_columns = copy.columns;
    if (copy.stamp_run_id) {  // the run's id, a number of ours: the rows land in raw stamped
        select_list += ", " + std::to_string(params.run_id) + "::bigint";
        target_columns.push_back("run_id");
    }
    const std::string bucket_of_key = copy.rows == BulkCopy::Rows::RowsInBuckets ? row_bucket_sql(key, copy.bucket_bits)
                                                                                : key_bucket_sql(key);
    const char* select_c = select_list.c_str();
    const char* bucket_c = bucket_of_key.c_str();
    const char* foreign_table = copy.source_table.c_str();
    const char* target_table = copy.target_table.c_str();
    const char* target_schema = copy.target_schema.c_str();
    const char* window_column = copy.window_column.c_str();
    const char* keys_query = copy.keys_query.c_str();
    const char* key_column = copy.key_column.c_str();
    const char* while_source_works = copy.while_source_works.c_str();
    const char* table_label = copy.table_label.c_str();
    const char* only_if = copy.only_if.c_str();
    const BulkCopy::Rows mode = copy.rows;
    const bool truncate_first = copy.truncate_first;
    const bool replace_keys = copy.replace_keys;
    std::vector<const char*> column_vector;
    for (const auto& c : target_columns) column_vector.push_back(c.c_str());
    column_vector.push_back(nullptr);
    const char* const* column_names = column_vector.data();
    int64 rows = 0;

    pg_call([&] {
        if (only_if[0]) {
            char* wanted = spi_text_value(only_if, params);
            if (wanted == nullptr || strcmp(wanted, "t") != 0) return;  // this copy is not the one wanted
        }
        char* remote_schema;
        char* remote_table;
        remote_name(foreign_table, &remote_schema, &remote_table);
        const char* remote = quote_qualified_identifier(remote_schema, remote_table);
        open_session(copy, remote);
        if (copy.capture_snapshot) session.record_snapshot = true;
        const char* target = quote_qualified_identifier(target_schema, target_table);
        // Which rows (see BulkCopy::Rows); literals are quoted, identifiers are the extension's.
        const char* tail = "";
        if (mode == BulkCopy::Rows::Window && params.has_window) {
            // ±infinity has no to_char(): NULL, which must never reach quote_literal_cstr().
            char* from = spi_text_value("SELECT to_char($5, 'YYYY-MM-DD HH24:MI:SS.US')", params);
            if (from == nullptr)
                ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                                errmsg("sicoop: the movements' window has no finite start"),
                                errhint("Check sicoop.as_of and sicoop.lookback.")));
            tail = psprintf(" WHERE %s >= %s::timestamp", quote_identifier(window_column), quote_literal_cstr(from));
            // ...and the whole of the days asked for (days before the window that changed).
            char* days = keys_query[0] ? spi_text_value(keys_query, params) : nullptr;
            if (days != nullptr) {
                tail = psprintf("%s OR %s::date = ANY (%s::date[])", tail, quote_identifier(window_column),
                                quote_literal_cstr(days));
                if (has_null_element(days)) tail = psprintf("%s OR %s IS NULL", tail, quote_identifier(window_column));
            }
        } else if (mode == BulkCopy::Rows::Keys) {
            char* keys = spi_text_value(keys_query, params);
            if (keys == nullptr) return;  // no key asked for: nothing to copy
            const bool with_null = has_null_element(keys);
            const char* asked = psprintf("%s::text = ANY (%s::text[])%s", quote_identifier(key_column),
                                         quote_literal_cstr(keys),
                                         with_null ? psprintf(" OR %s IS NULL", quote_identifier(key_column)) : "");
            tail = psprintf(" WHERE %s", asked);
            if (replace_keys)  // read again: what the stage holds of these keys goes first
                run_local(psprintf("DELETE FROM %s WHERE %s", target, asked));
        } else if (mode == BulkCopy::Rows::KeysInBuckets || mode == BulkCopy::Rows::RowsInBuckets) {
            char* buckets = spi_text_value(keys_query, params);
            if (buckets == nullptr) {  // no bucket differs: no key to read
                run_local(psprintf("TRUNCATE %s", target));
                return;
            }
            tail = psprintf(" WHERE %s = ANY (%s::int[])", bucket_c, quote_literal_cstr(buckets));
        } else if (mode == BulkCopy::Rows::RowChecksumsAndDayTotals) {
            tail = ") s GROUP BY GROUPING SETS ((b), (d))";
        } else if (mode == BulkCopy::Rows::KeyChecksums || mode == BulkCopy::Rows::RowChecksums ||
                   mode == BulkCopy::Rows::DayTotals) {
            tail = " GROUP BY 1";
        } else if (mode == BulkCopy::Rows::ChangedSinceSnapshot) {
            // Rows whose xmin is at or after the snapshot xmin the previous copy recorded
            // (frozen rows are old: their age is the largest there is).
            Oid argtypes[1] = {TEXTOID};
            Datum args[1] = {CStringGetTextDatum(foreign_table)};
            if (SPI_execute_with_args("SELECT snapshot_xmin::text FROM sicoop.source_sync WHERE table_name = $1", 1,
                                      argtypes, args, nullptr, false, 1) != SPI_OK_SELECT)
                elog(ERROR, "sicoop: could not read sicoop.source_sync");
            if (SPI_processed == 1) {
                char* since = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
                // Both ages count back from the same transaction id; a recorded snapshot the
                // source has not reached yet (another source, or a restore) means "read all".
                tail = psprintf(" WHERE %s::bigint >= txid_snapshot_xmax(txid_current_snapshot())"
                                " OR age(xmin) <= age((%s::bigint %% 4294967296)::text::xid)",
                                quote_literal_cstr(since), quote_literal_cstr(since));
            }
        }
        char* command;
        if (mode == BulkCopy::Rows::ColumnTypes) {
            // The source's catalog: each column's type, and whether a unique index (total, valid,
            // on that column alone) guarantees its values.
            command = psprintf(
                "COPY (SELECT %s::text, a.attname::text, format_type(a.atttypid, a.atttypmod),"
                " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indisvalid"
                " AND i.indnatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL), a.attnotnull"
                " FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped)"
                " TO STDOUT (FORMAT binary)",
                quote_literal_cstr(table_label), quote_literal_cstr(remote));
        } else {
            command = psprintf("COPY (SELECT %s FROM %s%s) TO STDOUT (FORMAT binary)", select_c, remote, tail);
        }

        // ("pg_temp" names this session's temporary schema.)
        Oid target_oid = RangeVarGetRelid(makeRangeVar(pstrdup(target_schema), pstrdup(target_table), -1), NoLock, true);
        if (!OidIsValid(target_oid)) elog(ERROR, "sicoop: table %s.%s is missing", target_schema, target_table);
        if (truncate_first) run_local(psprintf("TRUNCATE %s", target));
        // The target's columns this copy fills (raw_* also has run_id and loaded_at, from defaults).
        List* attnames = NIL;
        for (const char* const* c = column_names; *c; ++c) attnames = lappend(attnames, makeString(pstrdup(*c)));

        stream = CopyStream{session.conn, nullptr, 0, 0, false};
        PGresult* res = nullptr;
        if (PQsendQuery(stream.conn, command))
            res = libpqsrv_get_result(stream.conn, PG_WAIT_EXTENSION);  // interruptible wait
        if (PQresultStatus(res) != PGRES_COPY_OUT)
            source_error(stream.conn, res, psprintf("copy %s.%s", remote_schema, remote_table));
        PQclear(res);
        if (while_source_works[0] && SPI_execute(while_source_works, false, 0) < 0)
            elog(ERROR, "sicoop: could not run %s", while_source_works);

        // What COPY FROM checks before it writes (DoCopy): the caller may insert into the
        // table, and no row-level security applies to it (COPY FROM refuses RLS too).
        AclResult acl = pg_class_aclcheck(target_oid, GetUserId(), ACL_INSERT);
        if (acl != ACLCHECK_OK) aclcheck_error(acl, OBJECT_TABLE, get_rel_name(target_oid));
        if (check_enable_rls(target_oid, InvalidOid, false) == RLS_ENABLED)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("sicoop: table sicoop.%s has row-level security enabled, which the bulk copy "
                                   "(as COPY FROM) does not support", target_table)));
        Relation rel = table_open(target_oid, RowExclusiveLock);
        ParseState* pstate = make_parsestate(nullptr);
        (void) addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, nullptr, false, false);
        List* options = list_make1(makeDefElem(pstrdup("format"), (Node*) makeString(pstrdup("binary")), -1));
        CopyFromState cstate =
            BeginCopyFrom(pstate, rel, nullptr, nullptr, false, read_source_stream, attnames, options);
        rows = static_cast<int64>(CopyFrom(cstate));
        EndCopyFrom(cstate);
        table_close(rel, NoLock);
        release_buffer();

        // The source's verdict on its side of the copy.
        res = PQgetResult(stream.conn);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            source_error(stream.conn, res, psprintf("copy %s.%s", remote_schema, remote_table));
        PQclear(res);
        // Drain to the end of the command before anything else is sent.
        while ((res = PQgetResult(stream.conn)) != nullptr) PQclear(res);
        stream = CopyStream{};
    });
    return rows;
}

}  // namespace sicoop
