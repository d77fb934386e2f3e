#include "copy_text.hpp"

#include "steps/copy_filter.hpp"

#include <string>
#include <vector>

namespace sicoop {

namespace {

// The text COPY FROM is reading (copy_text_into): its data-source callback has no user argument.
struct MemoryText {
    const std::string* text = nullptr;
    size_t offset = 0;
};
MemoryText* memory_text = nullptr;

extern "C" int read_memory_text(void* outbuf, int /*minread*/, int maxread) {
    const size_t left = memory_text->text->size() - memory_text->offset;
    const size_t n = Min(left, static_cast<size_t>(maxread));
    memcpy(outbuf, memory_text->text->data() + memory_text->offset, n);
    memory_text->offset += n;
    return static_cast<int>(n);
}

// An error message without the values it quotes ("invalid input syntax for type date: "…""):
// the warehouse's log gets no more of a row than the source's does.
char* message_without_values(const char* message) {
    char* out = nullptr;
    try {  // sicoop::without_values (src/steps/values.cpp): the same rule as the stream worker's
        const std::string text = sicoop::without_values(std::string_view(message ? message : ""));
        out = static_cast<char*>(palloc_extended(text.size() + 1, MCXT_ALLOC_NO_OOM));
        if (out != nullptr) memcpy(out, text.c_str(), text.size() + 1);
    } catch (...) {
        out = nullptr;
    }
    return out != nullptr ? out : pstrdup("");
}

}  // namespace

int64 copy_text_into(const char* table, const std::vector<std::string>& columns, const std::string& text) {
    // Card numbers masked in memory before COPY FROM writes a byte (steps/copy_filter.hpp).
    CopyFilter filter(false, copy_masks(table, columns));
    std::string masked;
    const std::string& data = filter.filter_all(text, masked);
    MemoryText reading{&data, 0};
    int64 rows = 0;
    pg_call([&] {
        Oid target_oid = RangeVarGetRelid(makeRangeVar(pstrdup("sicoop"), pstrdup(table), -1), NoLock, false);
        List* attnames = NIL;
        for (const auto& c : columns) attnames = lappend(attnames, makeString(pstrdup(c.c_str())));
        check_may_copy_into(target_oid, table);
        Relation rel = table_open(target_oid, RowExclusiveLock);
        memory_text = &reading;
        const ConversionSite site{table, nullptr, 0};
        rows = copy_from(rel, attnames, true, site, read_memory_text);
        memory_text = nullptr;
        table_close(rel, NoLock);
    });
    memory_text = nullptr;
    return rows;
}

void check_may_copy_into(Oid target_oid, const char* target_table) {
    AclResult acl = pg_class_aclcheck(target_oid, GetUserId(), ACL_INSERT);
    if (acl != ACLCHECK_OK) aclcheck_error(acl, OBJECT_TABLE, get_rel_name(target_oid));
    if (check_enable_rls(target_oid, InvalidOid, false) == RLS_ENABLED)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("sicoop: table sicoop.%s has row-level security enabled, which the bulk copy "
                               "(as COPY FROM) does not support", target_table)));
    // COPY FROM in the backend writes the coordinator's own relation: a Citus table's rows
    // belong in its shards, which only Citus's own COPY or INSERT reaches.
    Oid arg_types[1] = {REGCLASSOID};
    Datum args[1] = {ObjectIdGetDatum(target_oid)};
    if (SPI_execute_with_args("SELECT sicoop._is_citus_table($1)", 1, arg_types, args, nullptr, true, 1) != SPI_OK_SELECT)
        elog(ERROR, "sicoop: could not tell whether sicoop.%s is a Citus table", target_table);
    bool is_null = true;
    if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null)) && !is_null)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("sicoop: table sicoop.%s is a Citus table, which the bulk copy (as COPY FROM) cannot fill",
                               target_table)));
}

void run_local(const char* sql) {
    int rc = SPI_execute(sql, false, 0);
    if (rc != SPI_OK_UTILITY && rc != SPI_OK_DELETE && rc != SPI_OK_INSERT) elog(ERROR, "sicoop: %s failed", sql);
}

void explain_conversion_error(const ConversionSite& site, const char* attname, uint64 line, MemoryContext cxt) {
    MemoryContext error_cxt = MemoryContextSwitchTo(cxt);
    ErrorData* e = CopyErrorData();
    MemoryContextSwitchTo(error_cxt);
    const remote::Conversion* c = nullptr;
    for (size_t i = 0; i < site.count; ++i)
        if (attname == nullptr ? site.count == 1 : site.columns[i].column == attname) c = &site.columns[i];
    const bool source_failed = site.source_failed != nullptr && *site.source_failed;
    if (c == nullptr || source_failed || ERRCODE_TO_CATEGORY(e->sqlerrcode) != ERRCODE_DATA_EXCEPTION) return;
    FlushErrorState();
    const char* where = line > 0 ? psprintf(" (line %llu of the copy)", static_cast<unsigned long long>(line)) : "";
    ereport(ERROR, (errcode(e->sqlerrcode),
                    errmsg("sicoop: a value of the source's column %s.%s (%s there) is not a valid %s: %s", site.table,
                           c->column.c_str(), c->from.empty() ? "of unknown type" : c->from.c_str(), c->to.c_str(),
                           message_without_values(e->message)),
                    errdetail("The warehouse converts the column itself%s: no value of it is cast at the source.", where),
                    errhint("Fix the value at the source, or give the column type %s there.", c->to.c_str())));
}

int64 copy_from(Relation rel, List* attnames, bool as_text, const ConversionSite& site, copy_data_source_cb source) {
    ParseState* pstate = make_parsestate(nullptr);
    (void) addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, nullptr, false, false);
    List* options = as_text ? NIL : list_make1(makeDefElem(pstrdup("format"), (Node*) makeString(pstrdup("binary")), -1));
    CopyFromState cstate = BeginCopyFrom(pstate, rel, nullptr, nullptr, false, source, attnames, options);
    MemoryContext cxt = CurrentMemoryContext;
    int64 rows = 0;
    PG_TRY();
    { rows = static_cast<int64>(CopyFrom(cstate)); }
    PG_CATCH();
    {
        if (as_text) explain_conversion_error(site, cstate->cur_attname, cstate->cur_lineno, cxt);
        PG_RE_THROW();
    }
    PG_END_TRY();
    EndCopyFrom(cstate);
    return rows;
}

}  // namespace sicoop
