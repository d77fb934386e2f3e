// sicoop.export_flat(path): COPY (SELECT * FROM sicoop.vw_movimentacao_flat) TO a server file,
// as CSV with a header, ';'-separated, UTF-8, ISO dates.
//
// Where it may write:
//   - a plain file name goes into sicoop.export_directory, the directory a superuser chose
//     (ALTER SYSTEM or ALTER DATABASE ... SET): that is how a non-superuser operator exports;
//   - an absolute path needs what COPY TO a file needs: the privileges of pg_write_server_files.
// The query runs with the caller's own privileges (the executor checks them as for any
// query); only COPY's role check for server files is replaced by the directory rule above,
// which is why this calls BeginCopyTo() itself rather than COPY.
#include "export.hpp"

#include "steps/text_rules.hpp"

extern "C" {
#include "catalog/pg_authid_d.h"
#include "catalog/pg_class.h"
#include "parser/parser.h"
#include "utils/acl.h"
#include "utils/syscache.h"
}

#include <string>

namespace sicoop {

namespace {

constexpr const char* kFlatQuery = "SELECT * FROM sicoop.vw_movimentacao_flat";

// The absolute file to write, or an error saying why `path` may not be written.
std::string export_target(const std::string& path) {
    if (!path.empty() && path.front() == '/') {
        bool allowed = false;
        pg_call([&] { allowed = has_privs_of_role(GetUserId(), ROLE_PG_WRITE_SERVER_FILES); });
        if (!allowed)
            pg_call([] {
                ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                                errmsg("sicoop.export_flat: writing to a server path needs the privileges of pg_write_server_files"),
                                errhint("Give a file name instead: it is written into sicoop.export_directory, the "
                                        "directory a superuser allowed.")));
            });
        return path;
    }
    if (!is_plain_file_name(path)) {
        const std::string shown = path.substr(0, 80);
        const char* p = shown.c_str();
        pg_call([&] {
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("sicoop.export_flat: \"%s\" is neither a plain file name nor an absolute path", p),
                            errhint("A file name has letters, digits, '.', '_' and '-' only, and does not start with '.'.")));
        });
    }
    const char* directory = nullptr;
    pg_call([&] { directory = GetConfigOption("sicoop.export_directory", true, false); });
    if (directory == nullptr || directory[0] != '/')
        pg_call([] {
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("sicoop.export_flat: no export directory is set"),
                            errhint("A superuser sets sicoop.export_directory to an absolute directory the server may "
                                    "write (ALTER SYSTEM SET, or ALTER DATABASE ... SET).")));
        });
    std::string dir(directory);
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    return dir + "/" + path;
}

}  // namespace

Datum export_flat(FunctionCallInfo fcinfo) {
    std::string path;
    pg_call([&] {
        if (PG_ARGISNULL(0)) ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("sicoop.export_flat: a file path is required")));
    });
    {
        char* arg = nullptr;
        pg_call([&] { arg = text_to_cstring(PG_GETARG_TEXT_PP(0)); });
        path = arg;
    }
    if (path.empty())
        pg_call([] { ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("sicoop.export_flat: a file path is required"))); });
    // A superuser does not read a flat view another role owns: whatever its owner made it run
    // would run with superuser rights (as for runs, sicoop._check_ready()).
    pg_call([] {
        Oid view = get_relname_relid("vw_movimentacao_flat", get_namespace_oid("sicoop", false));
        if (!OidIsValid(view)) elog(ERROR, "sicoop: view sicoop.vw_movimentacao_flat is missing");
        HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(view));
        if (!HeapTupleIsValid(tuple)) elog(ERROR, "sicoop: cache lookup failed for relation %u", view);
        Oid owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
        ReleaseSysCache(tuple);
        // Only the owner itself (or anyone, when a superuser owns it): a member with more
        // rights, or a superuser, would lend them to what the view runs.
        if (GetUserId() != owner && !superuser_arg(owner))
            ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                            errmsg("sicoop.export_flat: the flat view belongs to %s, who alone exports it",
                                   GetUserNameFromId(owner, false)),
                            errhint("SET ROLE %s first: what the view runs must not run with superuser rights.",
                                    quote_identifier(GetUserNameFromId(owner, false)))));
    });
    const std::string target = export_target(path);
    const char* target_c = target.c_str();
    uint64 rows = 0;
    pg_call([&] {
        // ISO dates, and names resolved in pg_catalog only, for this call.
        int level = NewGUCNestLevel();
        (void) set_config_option("datestyle", "ISO, YMD", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
        (void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                                 false);
        RawStmt* query = linitial_node(RawStmt, raw_parser(kFlatQuery, RAW_PARSE_DEFAULT));
        ParseState* pstate = make_parsestate(nullptr);
        pstate->p_sourcetext = kFlatQuery;
        List* options = list_make4(makeDefElem(pstrdup("format"), (Node*) makeString(pstrdup("csv")), -1),
                                   makeDefElem(pstrdup("header"), (Node*) makeString(pstrdup("true")), -1),
                                   makeDefElem(pstrdup("delimiter"), (Node*) makeString(pstrdup(";")), -1),
                                   makeDefElem(pstrdup("encoding"), (Node*) makeString(pstrdup("UTF8")), -1));
        CopyToState cstate = BeginCopyTo(pstate, nullptr, query, InvalidOid, target_c, false, NIL, options);
        rows = DoCopyTo(cstate);
        EndCopyTo(cstate);
        AtEOXact_GUC(true, level);
    });
    return Int64GetDatum(static_cast<int64>(rows));
}

}  // namespace sicoop
