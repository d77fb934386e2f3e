#include "bulk_copy.hpp"

#include "source.hpp"

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

}  // namespace

int64 bulk_copy(const BulkCopy& copy) {
    // The remote query, from the extension's own column list; names quoted all the same.
    std::string select_list;
    for (size_t i = 0; i < copy.columns.size(); ++i)
        select_list += (i ? ", " : "") + copy.columns[i] + "::" + copy.types[i];
    const char* select_c = select_list.c_str();
    const char* foreign_table = copy.source_table.c_str();
    const char* stage_table = copy.stage_table.c_str();
    int64 rows = 0;

    pg_call([&] {
        char* remote_schema;
        char* remote_table;
        remote_name(foreign_table, &remote_schema, &remote_table);
        char* command = psprintf("COPY (SELECT %s FROM %s) TO STDOUT (FORMAT binary)", select_c,
                                 quote_qualified_identifier(remote_schema, remote_table));

        Oid stage_oid = get_relname_relid(stage_table, get_namespace_oid("sicoop", false));
        if (!OidIsValid(stage_oid)) elog(ERROR, "sicoop: stage table sicoop.%s is missing", stage_table);
        char* truncate = psprintf("TRUNCATE sicoop.%s", quote_identifier(stage_table));
        if (SPI_execute(truncate, false, 0) != SPI_OK_UTILITY) elog(ERROR, "sicoop: %s failed", truncate);

        stream = CopyStream{source::open_connection(), nullptr, 0, 0, false};
        PG_TRY();
        {
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

            Relation rel = table_open(stage_oid, RowExclusiveLock);
            ParseState* pstate = make_parsestate(nullptr);
            (void) addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, nullptr, false, false);
            List* options = list_make1(makeDefElem(pstrdup("format"), (Node*) makeString(pstrdup("binary")), -1));
            CopyFromState cstate = BeginCopyFrom(pstate, rel, nullptr, nullptr, false, read_source_stream, NIL, options);
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
