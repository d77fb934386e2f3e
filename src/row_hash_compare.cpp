#include "row_hash_compare.hpp"

#include "copy_text.hpp"
#include "steps/row_hash_delta.hpp"

#include <vector>

namespace sicoop {

namespace {

// The comparison under way: what the callbacks below need (plain pointers: PostgreSQL errors
// longjmp through them).
struct Comparison {
    SourceSession* session;
    const char* what;  // "compare public.movimentacao_cartao", for its errors
    RowHashDelta* delta;
    RowHashReader* reader;
    bool source_done;
};

// Takes what the source has sent so far into the sums, reading its socket until it holds no
// more (each read takes only libpq's buffer's worth); with `wait`, everything, to the end of its
// copy (the wait interruptible: pg_cancel_backend works).
void take_source_rows(Comparison& c, bool wait) {
    PGconn* conn = c.session->connection();
    uint64 rows_before_read = c.reader->rows();
    if (PQconsumeInput(conn) == 0) c.session->fail(nullptr, c.what);
    while (!c.source_done) {
        char* buf = nullptr;
        const int n = PQgetCopyData(conn, &buf, 1 /* async */);
        if (n > 0) {
            const RowHashReader::Status status = c.reader->feed(buf, static_cast<size_t>(n), *c.delta);
            PQfreemem(buf);
            if (status == RowHashReader::Status::Malformed)
                ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
                                errmsg("sicoop: %s: the source's row hashes are not in the form asked for", c.what)));
            continue;
        }
        if (n == -1) {  // the copy's end: the source's verdict on it
            PGresult* res = libpqsrv_get_result(conn, PG_WAIT_EXTENSION);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) c.session->fail(res, c.what);
            PQclear(res);
            while ((res = libpqsrv_get_result(conn, PG_WAIT_EXTENSION)) != nullptr) PQclear(res);
            c.source_done = true;
            break;
        }
        if (n == -2) c.session->fail(libpqsrv_get_result(conn, PG_WAIT_EXTENSION), c.what);
        // No whole row in libpq's buffer: read the socket again, unless the last read brought none.
        if (!wait) {
            if (c.reader->rows() == rows_before_read) return;
            rows_before_read = c.reader->rows();
        } else {
            CHECK_FOR_INTERRUPTS();
            (void) WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_EXIT_ON_PM_DEATH, PQsocket(conn),
                                     -1L, PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
        }
        if (PQconsumeInput(conn) == 0) c.session->fail(nullptr, c.what);
    }
}

// Raw's rows go straight from the executor into the sums, never materialized; every
// kRawRowsBetweenTakes of them, what the source sent meanwhile is taken too, so that it never
// waits on a full socket.
struct RawRowsReceiver {
    DestReceiver pub;  // first: PostgreSQL sees a DestReceiver
    Comparison* comparison;
    uint64 rows;
};

constexpr uint64 kRawRowsBetweenTakes = 1024;

bool receive_raw_row(TupleTableSlot* slot, DestReceiver* self) {
    auto* r = reinterpret_cast<RawRowsReceiver*>(self);
    slot_getallattrs(slot);
    if (slot->tts_isnull[0] || slot->tts_isnull[1] ||
        !r->comparison->delta->add_raw(DatumGetInt32(slot->tts_values[0]),
                                       static_cast<uint64_t>(DatumGetInt64(slot->tts_values[1]))))
        elog(ERROR, "sicoop: %s: a raw row's bucket is out of range", r->comparison->what);
    if (++r->rows % kRawRowsBetweenTakes == 0) take_source_rows(*r->comparison, false);
    return true;
}

void start_raw_rows(DestReceiver*, int, TupleDesc desc) {
    if (desc->natts != 2 || TupleDescAttr(desc, 0)->atttypid != INT4OID || TupleDescAttr(desc, 1)->atttypid != INT8OID)
        elog(ERROR, "sicoop: raw's row hashes are not (int, bigint)");
}

void end_raw_rows(DestReceiver*) {}

// The buckets that differ, as the target table's only rows.
void store_buckets(const char* target, const std::vector<int32_t>& buckets) {
    run_local(psprintf("TRUNCATE %s", target));
    if (buckets.empty()) return;
    Datum* values = static_cast<Datum*>(palloc_extended(buckets.size() * sizeof(Datum), MCXT_ALLOC_HUGE));
    for (size_t i = 0; i < buckets.size(); ++i) values[i] = Int32GetDatum(buckets[i]);
    ArrayType* array = construct_array(values, static_cast<int>(buckets.size()), INT4OID, sizeof(int32), true, TYPALIGN_INT);
    Oid argtypes[1] = {INT4ARRAYOID};
    Datum args[1] = {PointerGetDatum(array)};
    const char* sql = psprintf("INSERT INTO %s (bucket) SELECT pg_catalog.unnest($1)", target);
    if (SPI_execute_with_args(sql, 1, argtypes, args, nullptr, false, 0) != SPI_OK_INSERT)
        elog(ERROR, "sicoop: could not store the buckets that differ in %s", target);
}

}  // namespace

int64 compare_row_hashes(const BulkCopy& copy, const std::string& command, const RemoteTable& table,
                         SourceSession& session) {
    RowHashDelta delta(copy.bucket_bits);
    RowHashReader reader;
    const std::string what = "compare " + table.label;
    Comparison comparison{&session, what.c_str(), &delta, &reader, false};
    const char* raw_rows = copy.local_row_hashes.c_str();
    pg_call([&] {
        session.statement_sent();
        if (!PQsendQuery(session.connection(), command.c_str())) session.fail(nullptr, comparison.what);
        PGresult* res = libpqsrv_get_result(session.connection(), PG_WAIT_EXTENSION);
        if (PQresultStatus(res) != PGRES_COPY_OUT) session.fail(res, comparison.what);
        PQclear(res);

        RawRowsReceiver receiver{};
        receiver.pub.receiveSlot = receive_raw_row;
        receiver.pub.rStartup = start_raw_rows;
        receiver.pub.rShutdown = end_raw_rows;
        receiver.pub.rDestroy = end_raw_rows;
        receiver.pub.mydest = DestNone;
        receiver.comparison = &comparison;
        SPIExecuteOptions options{};
        options.dest = &receiver.pub;
        if (SPI_execute_extended(raw_rows, &options) < 0) elog(ERROR, "sicoop: could not read raw's row hashes");
        take_source_rows(comparison, true);
        if (!reader.ended()) elog(ERROR, "sicoop: %s: the source's row hashes ended early", comparison.what);
    });
    const std::vector<int32_t> buckets = delta.differing();
    const std::string target = remote::quote_qualified_identifier("sicoop", copy.target_table, false);
    pg_call([&] { store_buckets(target.c_str(), buckets); });
    return static_cast<int64>(reader.rows());
}

}  // namespace sicoop
