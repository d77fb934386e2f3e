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
        if (n == -2)
            ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
                            errmsg("sicoop: the source connection failed during the copy"),
                            errdetail_internal("%s", pchomp(PQerrorMessage(stream.conn)))));
        (void) WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_EXIT_ON_PM_DEATH,
                                 PQsocket(stream.conn), -1L, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        if (PQconsumeInput(stream.conn) == 0)
            ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
                            errmsg("sicoop: the source connection failed during the copy"),
                            errdetail_internal("%s", pchomp(PQerrorMessage(stream.conn)))));
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

// Runs a simple statement on the source and returns its first value (palloc'd), or nullptr.
char* remote_value(PGconn* conn, const char* sql, const char* what) {
    PGresult* res = libpqsrv_exec(conn, sql, PG_WAIT_EXTENSION);
    if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
        char* detail = pchomp(PQerrorMessage(conn));
        PQclear(res);
        ereport(ERROR, (errcode(ERRCODE_CONNECTION_EXCEPTION), errmsg("sicoop: the source refused to %s", what),
                        errdetail_internal("%s", detail)));
    }
    char* value = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? pstrdup(PQgetvalue(res, 0, 0)) : nullptr;
    PQclear(res);
    return value;
}

}  // namespace

int64 bulk_copy(const BulkCopy& copy, const spi::RunParams& params) {
    // The remote query, from the extension's own column list; names quoted all the same.
    std::string select_list;
    const std::string key = copy.key_column;
    if (copy.rows == BulkCopy::Rows::KeyChecksums) {
        select_list = key_bucket_sql(key) + "::int, count(*)::bigint, sum(" + key_hash_sql(key) + ")::numeric";
    } else if (copy.rows == BulkCopy::Rows::KeysInBuckets) {
        select_list = key + "::varchar(50)";
    } else {
        if (copy.types.size() != copy.columns.size()) throw std::logic_error("bulk copy of " + copy.source_table + ": one type per column");
        for (size_t i = 0; i < copy.columns.size(); ++i)
            select_list += (i ? ", " : "") + copy.columns[i] + "::" + copy.types[i];
        if (copy.stamp_run_id) select_list += ", " + std::to_string(params.run_id) + "::bigint";
    }
    const std::string bucket_of_key = key_bucket_sql(key);
    const char* select_c = select_list.c_str();
    const char* bucket_c = bucket_of_key.c_str();
    const char* foreign_table = copy.source_table.c_str();
    const char* target_table = copy.target_table.c_str();
    const char* window_column = copy.window_column.c_str();
    const char* keys_query = copy.keys_query.c_str();
    const char* key_column = copy.key_column.c_str();
    const BulkCopy::Rows mode = copy.rows;
    const bool truncate_first = copy.truncate_first;
    const bool capture_snapshot = copy.capture_snapshot;
    const char* watermark_column = copy.watermark_column.empty() ? nullptr : copy.watermark_column.c_str();
    std::vector<const char*> column_vector;
    for (const auto& c : copy.columns) column_vector.push_back(c.c_str());
    if (copy.stamp_run_id) column_vector.push_back("run_id");
    column_vector.push_back(nullptr);
    const char* const* column_names = column_vector.data();
    int64 rows = 0;

    pg_call([&] {
        char* remote_schema;
        char* remote_table;
        remote_name(foreign_table, &remote_schema, &remote_table);
        const char* remote = quote_qualified_identifier(remote_schema, remote_table);
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
        } else if (mode == BulkCopy::Rows::Keys) {
            char* keys = spi_text_value(keys_query, params);
            if (keys == nullptr) return;  // no key asked for: nothing to copy
            tail = psprintf(" WHERE %s::text = ANY (%s::text[])", quote_identifier(key_column), quote_literal_cstr(keys));
        } else if (mode == BulkCopy::Rows::KeysInBuckets) {
            char* buckets = spi_text_value(keys_query, params);
            if (buckets == nullptr) {  // no bucket differs: no key to read
                char* truncate = psprintf("TRUNCATE sicoop.%s", quote_identifier(target_table));
                if (SPI_execute(truncate, false, 0) != SPI_OK_UTILITY) elog(ERROR, "sicoop: %s failed", truncate);
                return;
            }
            tail = psprintf(" WHERE %s = ANY (%s::int[])", bucket_c, quote_literal_cstr(buckets));
        } else if (mode == BulkCopy::Rows::KeyChecksums) {
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
        char* command = psprintf("COPY (SELECT %s FROM %s%s) TO STDOUT (FORMAT binary)", select_c, remote, tail);

        Oid target_oid = get_relname_relid(target_table, get_namespace_oid("sicoop", false));
        if (!OidIsValid(target_oid)) elog(ERROR, "sicoop: table sicoop.%s is missing", target_table);
        if (truncate_first) {
            char* truncate = psprintf("TRUNCATE sicoop.%s", quote_identifier(target_table));
            if (SPI_execute(truncate, false, 0) != SPI_OK_UTILITY) elog(ERROR, "sicoop: %s failed", truncate);
        }
        // The target's columns this copy fills (raw_* also has run_id and loaded_at, from defaults).
        List* attnames = NIL;
        for (const char* const* c = column_names; *c; ++c) attnames = lappend(attnames, makeString(pstrdup(*c)));

        stream = CopyStream{source::open_connection(), nullptr, 0, 0, false};
        char* snapshot_xmin = nullptr;
        char* watermark = nullptr;
        PG_TRY();
        {
            if (capture_snapshot) {
                // One snapshot for the copy and for what it records.
                remote_value(stream.conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "open a transaction");
                snapshot_xmin = remote_value(stream.conn, "SELECT txid_snapshot_xmin(txid_current_snapshot())::text",
                                             "report its snapshot");
                if (watermark_column)
                    watermark = remote_value(stream.conn,
                                             psprintf("SELECT max(%s)::text FROM %s", quote_identifier(watermark_column), remote),
                                             "report its latest movement time");
            }
            PGresult* res = nullptr;
            if (PQsendQuery(stream.conn, command))
                res = libpqsrv_get_result(stream.conn, PG_WAIT_EXTENSION);  // interruptible wait
            if (PQresultStatus(res) != PGRES_COPY_OUT) {
                char* detail = pchomp(PQerrorMessage(stream.conn));
                PQclear(res);
                ereport(ERROR, (errcode(ERRCODE_CONNECTION_EXCEPTION),
                                errmsg("sicoop: the source refused to copy %s.%s", remote_schema, remote_table),
                                errdetail_internal("%s", detail)));
            }
            PQclear(res);

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

            // The source's verdict on its side of the copy.
            res = PQgetResult(stream.conn);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                char* detail = pchomp(PQerrorMessage(stream.conn));
                PQclear(res);
                ereport(ERROR, (errcode(ERRCODE_CONNECTION_EXCEPTION),
                                errmsg("sicoop: copying %s.%s from the source failed", remote_schema, remote_table),
                                errdetail_internal("%s", detail)));
            }
            PQclear(res);
            // Drain to the end of the command before anything else is sent.
            while ((res = PQgetResult(stream.conn)) != nullptr) PQclear(res);
            if (capture_snapshot) {
                remote_value(stream.conn, "COMMIT", "commit");
                Oid argtypes[3] = {TEXTOID, INT8OID, TEXTOID};
                Datum args[3] = {CStringGetTextDatum(foreign_table),
                                 DirectFunctionCall1(int8in, CStringGetDatum(snapshot_xmin)),
                                 watermark ? CStringGetTextDatum(watermark) : (Datum) 0};
                const char nulls[3] = {' ', ' ', watermark ? ' ' : 'n'};
                if (SPI_execute_with_args("INSERT INTO sicoop.source_sync (table_name, snapshot_xmin, watermark)"
                                          " VALUES ($1, $2, $3::timestamp)"
                                          " ON CONFLICT (table_name) DO UPDATE"
                                          " SET snapshot_xmin = EXCLUDED.snapshot_xmin, copied_at = now(),"
                                          " watermark = coalesce(EXCLUDED.watermark, source_sync.watermark)",
                                          3, argtypes, args, nulls, false, 0) != SPI_OK_INSERT)
                    elog(ERROR, "sicoop: could not record the source snapshot");
            }
        }
        PG_FINALLY();
        {
            release_buffer();
            libpqsrv_disconnect(stream.conn);
            stream = CopyStream{};
        }
        PG_END_TRY();
    });
    return rows;
}

}  // namespace sicoop
