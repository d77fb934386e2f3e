#include "source.hpp"

#include "settings.hpp"
#include "steps/step.hpp"

#include <string>
#include <utility>
#include <vector>

namespace sicoop::source {

namespace {

// Only options libpq knows go to libpq (the server also has postgres_fdw's own, such as
// fetch_size), as postgres_fdw itself does.
bool is_libpq_option(const char* keyword) {
    static PQconninfoOption* defaults = nullptr;
    if (defaults == nullptr) defaults = PQconndefaults();
    for (PQconninfoOption* o = defaults; o && o->keyword; ++o)
        if (strcmp(o->keyword, keyword) == 0) return true;
    return false;
}

// Connects and enforces what dblink and postgres_fdw enforce: a non-superuser must
// authenticate with a password, or could borrow the server's own OS identity.
PGconn* connect_checked(const char** keywords, const char** values, const char* where) {
    PGconn* conn = libpqsrv_connect_params(keywords, values, false, PG_WAIT_EXTENSION);
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
        char* detail = pchomp(conn ? PQerrorMessage(conn) : "out of memory");
        libpqsrv_disconnect(conn);
        ereport(ERROR, (errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
                        errmsg("sicoop: cannot connect to the source database (%s)", where),
                        errdetail_internal("%s", detail),
                        errhint("Check that the source is up and that sicoop.connect_source() was given the right host, port, database and credentials.")));
    }
    if (!superuser() && !PQconnectionUsedPassword(conn)) {
        libpqsrv_disconnect(conn);
        ereport(ERROR, (errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
                        errmsg("sicoop: a password is required to connect to the source"),
                        errdetail("Non-superusers must authenticate to the source with a password."),
                        errhint("Pass the password to sicoop.connect_source().")));
    }
    return conn;
}

// The pipeline's tables' columns in `schema` at the source: (table, column).
std::vector<std::pair<std::string, std::string>> source_columns(const char** keywords, const char** values,
                                                                const char* where_c, const char* schema) {
    struct Row {
        char* table;
        char* column;
    };
    Row* rows = nullptr;
    int nrows = 0;
    pg_call([&] {
        PGconn* conn = connect_checked(keywords, values, where_c);
        PGresult* volatile res = nullptr;
        PG_TRY();
        {
            const char* params[1] = {schema};
            res = libpqsrv_exec_params(conn,
                "SELECT table_name::text, column_name::text FROM information_schema.columns"
                " WHERE table_schema = $1"
                " AND table_name IN ('associado', 'conta', 'cartao', 'movimentacao_cartao')",
                1, nullptr, params, nullptr, nullptr, 0, PG_WAIT_EXTENSION);
            if (PQresultStatus(res) != PGRES_TUPLES_OK)
                ereport(ERROR, (errcode(ERRCODE_CONNECTION_EXCEPTION),
                                errmsg("sicoop: cannot read the source's catalog (%s)", where_c),
                                errdetail_internal("%s", pchomp(PQerrorMessage(conn)))));
            nrows = PQntuples(res);
            rows = static_cast<Row*>(palloc0(sizeof(Row) * (nrows + 1)));
            for (int i = 0; i < nrows; ++i) {
                rows[i].table = pstrdup(PQgetvalue(res, i, 0));
                rows[i].column = pstrdup(PQgetvalue(res, i, 1));
            }
        }
        PG_FINALLY();
        {
            PQclear(res);
            libpqsrv_disconnect(conn);
        }
        PG_END_TRY();
    });
    std::vector<std::pair<std::string, std::string>> present;
    for (int i = 0; i < nrows; ++i) present.emplace_back(rows[i].table, rows[i].column);
    return present;
}

}  // namespace

void check(const char* host, int port, const char* dbname, const char* user, const char* password,
           const char* schema) {
    std::string where;
    pg_call([&] {
        if (host == nullptr || dbname == nullptr || user == nullptr || schema == nullptr)
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("sicoop.connect_source: host, port, dbname, username and schema are required")));
        if (port < 1 || port > 65535)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("sicoop.connect_source: port %d is not a TCP port: it must be between 1 and 65535", port)));
    });
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    where = std::string(user) + "@" + host + ":" + port_text + "/" + dbname;
    const char* keywords[] = {"host", "port", "dbname", "user", "fallback_application_name", "connect_timeout",
                              "password", nullptr};
    const char* values[] = {host, port_text, dbname, user, "sicoop_etl", "10", password, nullptr};
    if (password == nullptr || password[0] == '\0') keywords[6] = nullptr;  // no password: the list ends before it
    pg_call([&] {
        if (!superuser() && keywords[6] == nullptr)
            ereport(ERROR, (errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
                            errmsg("sicoop: a password is required to connect to the source"),
                            errdetail("Non-superusers must authenticate to the source with a password."),
                            errhint("Pass the password to sicoop.connect_source().")));
    });

    const char* where_c = where.c_str();
    const std::vector<std::pair<std::string, std::string>> present = source_columns(keywords, values, where_c, schema);

    std::vector<std::string> missing = missing_source_columns(present);
    if (missing.empty()) return;
    std::string detail;
    for (const auto& m : missing) detail += (detail.empty() ? "" : "; ") + m;
    const char* detail_c = detail.c_str();
    pg_call([&] {
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("sicoop: the source schema \"%s\" of %s lacks what the pipeline reads", schema, where_c),
                        errdetail("%s.", detail_c),
                        errhint("The source needs tables associado, conta, cartao and movimentacao_cartao as described in the README.")));
    });
}

Datum connect(FunctionCallInfo fcinfo) {
    Datum result = (Datum) 0;
    pg_call([&] {
        Oid types[6] = {TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
        Datum values[6];
        char nulls[6];
        for (int i = 0; i < 6; ++i) {
            const bool null = PG_NARGS() <= i || PG_ARGISNULL(i);
            values[i] = null ? (Datum) 0 : PG_GETARG_DATUM(i);
            nulls[i] = null ? 'n' : ' ';
        }
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "sicoop: SPI_connect failed");
        if (SPI_execute_with_args("SELECT sicoop._connect_source($1, $2, $3, $4, $5, $6)", 6, types, values, nulls, false,
                                  1) != SPI_OK_SELECT || SPI_processed != 1)
            elog(ERROR, "sicoop: sicoop._connect_source() returned nothing");
        bool isnull = false;
        Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        result = isnull ? (Datum) 0 : SPI_datumTransfer(d, false, -1);
        SPI_finish();
    });
    return result;
}

PGconn* open_connection(bool replication) {
    ForeignServer* server = GetForeignServerByName(kServerName, false);
    UserMapping* mapping = GetUserMapping(GetUserId(), server->serverid);
    int n = list_length(server->options) + list_length(mapping->options) + 5;
    const char** keywords = static_cast<const char**>(palloc0(sizeof(char*) * (n + 1)));
    const char** values = static_cast<const char**>(palloc0(sizeof(char*) * (n + 1)));
    int i = 0;
    ListCell* lc;
    foreach (lc, server->options) {
        DefElem* d = lfirst_node(DefElem, lc);
        if (is_libpq_option(d->defname)) keywords[i] = d->defname, values[i++] = defGetString(d);
    }
    bool has_password = false;
    foreach (lc, mapping->options) {
        DefElem* d = lfirst_node(DefElem, lc);
        if (strcmp(d->defname, "password") == 0 && defGetString(d)[0] != '\0') has_password = true;
        if (is_libpq_option(d->defname)) keywords[i] = d->defname, values[i++] = defGetString(d);
    }
    // As postgres_fdw and dblink: a non-superuser's mapping must carry its own password
    // (not borrow the server OS user's ~/.pgpass or trust rules).
    if (!superuser() && !has_password)
        ereport(ERROR, (errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
                        errmsg("sicoop: a password is required to connect to the source"),
                        errhint("Pass the password to sicoop.connect_source().")));
    keywords[i] = "fallback_application_name", values[i++] = "sicoop_etl";
    // A predictable session on the source, as postgres_fdw sets up its own: ISO dates for the
    // values read back as text, and only pg_catalog on the search path.
    // Every statement bounded by sicoop.source_timeout, lock waits included: a table held in
    // ACCESS EXCLUSIVE at the source fails the run in time instead of hanging it.
    // No JIT: the statements sent are scans and aggregates of simple expressions, which JIT
    // compiles for more than it saves (the full check's checksums at a million rows: 1.16-1.21 s
    // without, 1.24-1.26 s with), as the warehouse's steps run without it.
    keywords[i] = "options",
    values[i++] = psprintf("-c datestyle=ISO -c search_path=pg_catalog -c statement_timeout=%d -c lock_timeout=%d"
                           " -c jit=off",
                           settings::source_timeout_ms(), settings::source_timeout_ms());
    // Binary COPY text fields are decoded with this session's client encoding: send in it.
    keywords[i] = "client_encoding", values[i++] = pg_get_client_encoding_name();
    // The stream's connection: a logical replication connection to the same database.
    if (replication) keywords[i] = "replication", values[i++] = "database";
    keywords[i] = nullptr;
    char* where = psprintf("server %s", kServerName);
    return connect_checked(keywords, values, where);
}

}  // namespace sicoop::source
