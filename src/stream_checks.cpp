// What the stream checks at the source before it streams, and while it does (see
// stream_source.hpp): the publication and the replica identities, a Relation message's key, the
// slot's position and owner. Each failure says what is wrong and the statements that fix it.
#include "stream_source.hpp"

#include "source.hpp"
#include "stream_session.hpp"

#include <vector>

namespace sicoop::stream {

namespace {

// The source's names, quoted for its SQL and as its quote_ident() writes them.
struct SourceNames {
    std::string pub, schema;        // literals
    std::string pub_id, schema_id;  // identifiers
};

// What is wrong, and what fixes it at the source.
struct Findings {
    std::vector<std::string> problems, fixes;
};

// The query over the four tables: each table's existence, its place in the publication (with a
// row filter or a column list?), its replica identity and its columns, a primary key on its key.
std::string tables_query(PGconn* conn, const SourceNames& n) {
    std::string values;
    for (const SourceTable& t : source_tables())
        values += std::string(values.empty() ? "" : ", ") + "(" + literal(conn, t.name) + ", " + literal(conn, t.key) + ")";
    constexpr int kRowFiltersVersion = 150000;  // row filters and column lists came with 15
    const bool v15 = PQserverVersion(conn) >= kRowFiltersVersion;
    return std::string(R"sql(
SELECT t.name, t.key, c.oid IS NOT NULL,
       EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables pt
               WHERE pt.pubname = )sql") + n.pub + R"sql( AND pt.schemaname = )sql" + n.schema + R"sql( AND pt.tablename = t.name),
       )sql" + (v15 ? std::string(R"sql(EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid
               WHERE p.pubname = )sql") + n.pub + " AND pr.prrelid = c.oid AND (pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL))"
                     : std::string("false")) + R"sql(,
       coalesce(c.relreplident::text, ''),
       coalesce((SELECT string_agg(a.attname::text, ', ' ORDER BY a.attnum)
                 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                 WHERE i.indrelid = c.oid AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident
                                                                  ELSE false END), ''),
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
               WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnatts = 1 AND a.attname = t.key)
FROM (VALUES )sql" + values + R"sql() AS t(name, key)
LEFT JOIN pg_catalog.pg_class c ON c.relname = t.name AND c.relkind IN ('r', 'p')
      AND c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = )sql" + n.schema + ")";
}

// The publication exists and publishes every kind of change; false if it does not exist.
bool check_publication_kinds(Replication& source, const StreamConfig& config, const SourceNames& n, Findings& f) {
    PGresult* r = source.exec("SELECT p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate FROM pg_catalog.pg_publication p "
                              "WHERE p.pubname = " + n.pub,
                              PGRES_TUPLES_OK, "read the publication");
    constexpr int kKinds = 4;
    const bool exists = PQntuples(r) == 1;
    bool all_kinds = exists;
    for (int i = 0; exists && i < kKinds; ++i) all_kinds = all_kinds && std::string(PQgetvalue(r, 0, i)) == "t";
    PQclear(r);
    std::vector<std::string> qualified;
    for (const SourceTable& t : source_tables()) qualified.push_back(n.schema_id + "." + identifier(source, t.name));
    if (!exists) {
        f.problems.push_back("publication " + config.publication + " does not exist");
        f.fixes.push_back("CREATE PUBLICATION " + n.pub_id + " FOR TABLE " + joined(qualified, ", "));
    } else if (!all_kinds) {
        f.problems.push_back("publication " + config.publication + " does not publish every insert, update, delete and truncate");
        f.fixes.push_back("ALTER PUBLICATION " + n.pub_id + " SET (publish = 'insert, update, delete, truncate')");
    }
    return exists;
}

// Row `i` of tables_query(): the table in the publication, whole, its replica identity its key.
void check_table(Replication& source, PGresult* r, int i, bool published, const StreamConfig& config, const SourceNames& n,
                 Findings& f) {
    const std::string name = PQgetvalue(r, i, 0), key = PQgetvalue(r, i, 1);
    const std::string table = n.schema_id + "." + identifier(source, name);
    const std::string shown = config.source_schema + "." + name;
    if (std::string(PQgetvalue(r, i, 2)) != "t") {
        f.problems.push_back("source table " + shown + " does not exist");
        return;
    }
    if (published && std::string(PQgetvalue(r, i, 3)) != "t") {
        f.problems.push_back("publication " + config.publication + " leaves out " + shown);
        f.fixes.push_back("ALTER PUBLICATION " + n.pub_id + " ADD TABLE " + table);
    } else if (std::string(PQgetvalue(r, i, 4)) == "t") {
        f.problems.push_back("publication " + config.publication + " publishes " + shown + " with a row filter or a column list");
        f.fixes.push_back("ALTER PUBLICATION " + n.pub_id + " DROP TABLE " + table);
        f.fixes.push_back("ALTER PUBLICATION " + n.pub_id + " ADD TABLE " + table);
    }
    const std::string ident = PQgetvalue(r, i, 5), ident_columns = PQgetvalue(r, i, 6);
    const bool pk_on_key = std::string(PQgetvalue(r, i, 7)) == "t";
    if ((ident == "d" || ident == "i") && ident_columns == key) return;
    f.problems.push_back("the replica identity of " + shown + " is " +
                         (ident == "n"   ? std::string("NOTHING")
                          : ident == "f" ? std::string("FULL")
                          : ident_columns.empty() ? std::string("no key (no primary key)")
                                                  : "(" + ident_columns + ")") +
                         ", not its key " + key);
    if (!pk_on_key) f.fixes.push_back("ALTER TABLE " + table + " ADD PRIMARY KEY (" + identifier(source, key) + ")");
    if (ident != "d") f.fixes.push_back("ALTER TABLE " + table + " REPLICA IDENTITY DEFAULT");
}

}  // namespace

// At every connection, before the slot is made or read: the publication gives the stream every
// change the pipeline reads -- it exists, publishes insert, update, delete and truncate, holds the
// four source tables with no row filter and no column list -- and each table's replica identity is
// the pipeline's key (its primary key, or a unique index on exactly that column). Otherwise the
// stream fails (no retry) saying what is wrong and the statements that fix it.
void check_publication(Replication& source, const StreamConfig& config) {
    PGconn* conn = source.conn();
    const SourceNames n{literal(conn, config.publication), literal(conn, config.source_schema),
                        identifier(source, config.publication), identifier(source, config.source_schema)};
    Findings f;
    const bool exists = check_publication_kinds(source, config, n, f);
    PGresult* r = source.exec(tables_query(conn, n), PGRES_TUPLES_OK, "read the publication's tables");
    for (int i = 0; i < PQntuples(r); ++i) check_table(source, r, i, exists, config, n, f);
    PQclear(r);
    if (f.problems.empty()) return;
    const std::string m = joined(f.problems, "; "), h = joined(f.fixes, "; ");
    pg_call([&] {
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("sicoop: the stream would miss changes: %s", m.c_str()),
                        errhint("At the source: %s%sthen SELECT sicoop.start_stream();", h.c_str(), h.empty() ? "" : "; ")));
    });
}

// A Relation message (sent again whenever the source table changed) whose key is not the
// pipeline's: the changes it describes cannot be applied by key. The stream fails with the fix
// and a resync (the changes since then carry the wrong key), instead of replaying them forever.
void check_relation(const pgo::Message& m, const std::string& source_schema) {
    if (m.kind != pgo::Message::Kind::Relation || m.schema != source_schema) return;
    for (const SourceTable& t : source_tables()) {
        if (t.name != m.name) continue;
        std::vector<std::string> keys;
        for (const pgo::RelationColumn& c : m.columns)
            if (c.part_of_key) keys.push_back(c.name);
        if ((m.replica_identity == 'd' || m.replica_identity == 'i') && keys == std::vector<std::string>{t.key}) return;
        const std::string shown = m.schema + "." + m.name, got = keys.empty() ? std::string("no key") : "(" + joined(keys, ", ") + ")";
        const std::string key = t.key;
        pg_call([&] {
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("sicoop: the replica identity of source table %s changed while streaming: its changes "
                                   "now carry %s, not its key %s",
                                   shown.c_str(), got.c_str(), key.c_str()),
                            errhint("At the source: ALTER TABLE %s REPLICA IDENTITY DEFAULT (with its primary key on %s); "
                                    "then, the changes since carrying no usable key: SELECT sicoop.resync_stream(); "
                                    "SELECT sicoop.start_stream(); -- a fresh snapshot, compared with the warehouse; the "
                                    "history is kept.",
                                    shown.c_str(), key.c_str())));
        });
    }
}

namespace {

// The slot is confirmed past the warehouse's position: it was applied elsewhere.
[[noreturn]] void refuse_slot_ahead(const StreamConfig& config, pgo::Lsn confirmed) {
    const std::string slot_at = pgo::format_lsn(confirmed), ours = pgo::format_lsn(config.applied);
    pg_call([&] {
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("sicoop: replication slot %s is at %s, past this warehouse's position %s: the source's changes "
                               "between were applied to a warehouse that is not this one as it is now (restored from a dump, "
                               "recovered to a point in time, or copied); streaming from the slot would skip them",
                               config.slot.c_str(), slot_at.c_str(), ours.c_str()),
                        errhint("SELECT sicoop.stop_stream(); SELECT sicoop.resync_stream(); SELECT sicoop.start_stream(); -- a "
                                "fresh snapshot, compared with the warehouse: what it lacks is loaded, the history is kept. If "
                                "another warehouse still streams from slot %s, give this one its own: "
                                "SELECT sicoop.resync_stream(); SELECT sicoop.start_stream('sicoop_%s');",
                                config.slot.c_str(), this_warehouse().c_str())));
    });
    throw std::logic_error("unreachable");
}

// Another process streams from the slot: tried again (Transient::covers() its SQLSTATE).
[[noreturn]] void refuse_slot_in_use(const StreamConfig& config, int active_pid) {
    pg_call([&] {
        ereport(ERROR, (errcode(ERRCODE_OBJECT_IN_USE),
                        errmsg("sicoop: replication slot %s is in use by process %d at the source", config.slot.c_str(), active_pid),
                        errhint("The stream tries again every 5 s. A walsender of this stream's last connection ends when it "
                                "notices the connection is gone (wal_sender_timeout at the source); if another client streams "
                                "from the slot, end it at the source (SELECT pg_terminate_backend(%d);).",
                                active_pid)));
    });
    throw std::logic_error("unreachable");
}

}  // namespace

// No silent gap (at every start, so at every reconnection): the slot must not be confirmed past
// the warehouse's applied LSN. The worker confirms only what it has stored, so a slot ahead
// means the changes between were applied to a warehouse that is not this one as it is now: a
// restore from a dump, a point-in-time recovery, a copy. Streaming would skip them; the stream
// fails instead, with the fix (resync_stream() compares with a fresh snapshot and keeps the
// history). A slot another process streams from (a stalled walsender of this stream's last
// connection, until it notices) is tried again.
void check_position(Replication& source, const StreamConfig& config) {
    PGresult* r = source.exec("SELECT s.confirmed_flush_lsn::text, coalesce(s.active_pid, 0) FROM pg_catalog.pg_replication_slots s "
                              "WHERE s.slot_name = " + literal(source.conn(), config.slot),
                              PGRES_TUPLES_OK, "read the replication slot");
    const bool exists = PQntuples(r) == 1;
    pgo::Lsn confirmed = 0;  // (0: none yet)
    if (exists && !PQgetisnull(r, 0, 0)) confirmed = pgo::parse_lsn(PQgetvalue(r, 0, 0)).value_or(0);
    const int active_pid = exists ? atoi(PQgetvalue(r, 0, 1)) : 0;
    PQclear(r);
    if (!exists) return;  // (START_REPLICATION says so, with the fix)
    if (confirmed > config.applied) refuse_slot_ahead(config, confirmed);
    if (active_pid != 0) refuse_slot_in_use(config, active_pid);
}

// A slot this warehouse did not create is never used nor dropped: it may be another
// warehouse's position (two warehouses on one source each have their own), or anything else's.
void refuse_foreign_slot(const std::string& slot) {
    const std::string own = "sicoop_" + this_warehouse();
    pg_call([&] {
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("sicoop: replication slot %s exists at the source and this warehouse did not create it: "
                               "the stream neither uses nor drops it",
                               slot.c_str()),
                        errhint("Give the stream a slot of its own: SELECT sicoop.resync_stream(); SELECT sicoop.start_stream('%s'); "
                                "-- or, only if slot %s is known to be unused, drop it at the source "
                                "(SELECT pg_drop_replication_slot('%s');) and SELECT sicoop.start_stream();",
                                own.c_str(), slot.c_str(), slot.c_str())));
    });
    throw std::logic_error("unreachable");
}

}  // namespace sicoop::stream
