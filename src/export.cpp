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
//
// How it writes: into a new temporary file beside the target (created exclusively, never
// through a link), renamed over the target once complete and flushed. A reader never sees a
// half-written file, and a symlink or anything but a regular file at the target is refused:
// the export never writes through a link into some other file the server may write.
#include "export.hpp"

#include "settings.hpp"
#include "steps/text_rules.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace sicoop {

namespace {

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
    pg_call([&] { directory = settings::export_directory(); });
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

// Refuses a target that exists and is not a regular file: a symbolic link (looked at as
// itself, not followed), a directory, a FIFO, a device.
void refuse_unsafe_target(const char* target) {
    struct stat st;
    if (lstat(target, &st) != 0) {
        if (errno == ENOENT) return;
        ereport(ERROR, (errcode_for_file_access(), errmsg("sicoop.export_flat: could not look at \"%s\": %m", target)));
    }
    if (S_ISREG(st.st_mode)) return;
    const char* kind = S_ISLNK(st.st_mode) ? "a symbolic link" : S_ISDIR(st.st_mode) ? "a directory" : "not a regular file";
    ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                    errmsg("sicoop.export_flat: \"%s\" is %s", target, kind),
                    errdetail("The flat file replaces a regular file or none; it is never written through a link."),
                    errhint("Remove it, or export to another file name.")));
}

// COPY (the query of sicoop.vw_movimentacao_flat) TO `file`: CSV with a header, ';', UTF-8,
// ISO dates, names resolved in pg_catalog only. Returns the rows written.
// The view's own query, at the top level (the view is sicoop's, as the guard keeps it): its
// ORDER BY then orders the whole file. Read through the view, on Citus, it would order each
// shard's rows only (Citus pushes a view's ORDER BY down into each shard's task).
uint64 copy_flat_view_to(const char* file) {
    int level = NewGUCNestLevel();
    (void) set_config_option("datestyle", "ISO, YMD", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    (void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                             false);
    Oid view = get_relname_relid("vw_movimentacao_flat", get_namespace_oid("sicoop", false));
    if (!OidIsValid(view)) elog(ERROR, "sicoop: view sicoop.vw_movimentacao_flat is missing");
    const char* flat_query = text_to_cstring(DatumGetTextPP(DirectFunctionCall1(pg_get_viewdef, ObjectIdGetDatum(view))));
    RawStmt* query = linitial_node(RawStmt, raw_parser(flat_query, RAW_PARSE_DEFAULT));
    ParseState* pstate = make_parsestate(nullptr);
    pstate->p_sourcetext = flat_query;
    List* options = list_make4(makeDefElem(pstrdup("format"), (Node*) makeString(pstrdup("csv")), -1),
                               makeDefElem(pstrdup("header"), (Node*) makeString(pstrdup("true")), -1),
                               makeDefElem(pstrdup("delimiter"), (Node*) makeString(pstrdup(";")), -1),
                               makeDefElem(pstrdup("encoding"), (Node*) makeString(pstrdup("UTF8")), -1));
    CopyToState cstate = BeginCopyTo(pstate, nullptr, query, InvalidOid, file, false, NIL, options);
    uint64 rows = DoCopyTo(cstate);
    EndCopyTo(cstate);
    AtEOXact_GUC(true, level);
    return rows;
}

// The path argument: an error when it is NULL or empty.
std::string path_argument(FunctionCallInfo fcinfo) {
    pg_call([&] {
        if (PG_ARGISNULL(0)) ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("sicoop.export_flat: a file path is required")));
    });
    std::string path;
    {
        char* arg = nullptr;
        pg_call([&] { arg = text_to_cstring(PG_GETARG_TEXT_PP(0)); });
        path = arg;
    }
    if (path.empty())
        pg_call([] { ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("sicoop.export_flat: a file path is required"))); });
    return path;
}

// A superuser does not read a flat view another role owns: whatever its owner made it run
// would run with superuser rights (as for runs, sicoop._check_ready()). PostgreSQL code: runs
// inside pg_call().
void refuse_foreign_flat_view() {
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
}

// Writes the flat file into a new temporary file in `directory` beside `target`, then renames
// it over `target`; sets `rows` to the rows written. PostgreSQL code: runs inside pg_call().
void write_flat_file(const std::string& target, const std::string& directory, uint64& rows) {
    refuse_unsafe_target(target.c_str());
    // The temporary file: a name no one else uses (this backend's pid and a random part),
    // created exclusively and not through a link; closed at abort with the transaction.
    uint32 nonce = 0;
    if (!pg_strong_random(&nonce, sizeof nonce)) nonce = static_cast<uint32>(MyStartTime);
    const char* temporary = psprintf("%s/.%s.sicoop-%d-%08x.tmp", directory.c_str(),
                                     target.substr(target.rfind('/') + 1).c_str(), MyProcPid, nonce);
    volatile int fd = OpenTransientFile(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | PG_BINARY);
    if (fd < 0)
        ereport(ERROR, (errcode_for_file_access(),
                        errmsg("sicoop.export_flat: could not create the temporary file \"%s\": %m", temporary)));
    PG_TRY();
    {
        // Readable by others, as COPY TO a file makes it (the server's umask would make it
        // 0600): the flat file is for the data scientists, its card numbers masked.
        if (fchmod(fd, S_IRUSR | S_IWUSR | S_IRGRP | S_IROTH) != 0)
            ereport(ERROR, (errcode_for_file_access(),
                            errmsg("sicoop.export_flat: could not set the mode of \"%s\": %m", temporary)));
        // COPY opens the file by name: /proc/self/fd names the one just created, whatever
        // is done to the directory meanwhile.
        rows = copy_flat_view_to(psprintf("/proc/self/fd/%d", fd));
        if (pg_fsync(fd) != 0)
            ereport(ERROR, (errcode_for_file_access(),
                            errmsg("sicoop.export_flat: could not flush \"%s\": %m", temporary)));
        if (CloseTransientFile(fd) != 0)
            ereport(ERROR, (errcode_for_file_access(),
                            errmsg("sicoop.export_flat: could not close \"%s\": %m", temporary)));
        fd = -1;
        refuse_unsafe_target(target.c_str());
        if (rename(temporary, target.c_str()) != 0)
            ereport(ERROR, (errcode_for_file_access(),
                            errmsg("sicoop.export_flat: could not rename \"%s\" to \"%s\": %m", temporary,
                                   target.c_str())));
        fsync_fname(directory.c_str(), true);
    }
    PG_CATCH();
    {
        if (fd >= 0) (void) CloseTransientFile(fd);
        (void) unlink(temporary);
        PG_RE_THROW();
    }
    PG_END_TRY();
}

}  // namespace

Datum export_flat(FunctionCallInfo fcinfo) {
    const std::string path = path_argument(fcinfo);
    pg_call([] { refuse_foreign_flat_view(); });
    const std::string target = export_target(path);
    const std::string directory = target.substr(0, target.rfind('/') > 0 ? target.rfind('/') : 1);
    uint64 rows = 0;
    pg_call([&] { write_flat_file(target, directory, rows); });
    return Int64GetDatum(static_cast<int64>(rows));
}

}  // namespace sicoop
