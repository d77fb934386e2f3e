// Step load_raw, a full run's comparison: the source and raw each sum a 64-bit hash of every
// row per bucket of keys, at the same time; only the rows of the buckets that differ are copied
// and merged (raw.cpp's plan_compared). And an incremental run's deletions from the tables read
// by xmin, found by checksums of the keys per bucket (plan_keyed). Pure C++.
#include "steps/pure_cpp.hpp"

#include "steps/raw_parts.hpp"

namespace sicoop {

namespace {

// The expressions of a column's hash, written whole: ${value} the column's value, ${seed} its
// position (also the hash of NULL, negated).
const char* const kHashOf = R"sql(coalesce(${hash}, -${seed}))sql";
const char* const kTimeHash = R"sql(pg_catalog.timestamp_hash_extended(${value}::timestamp, ${seed}))sql";
const char* const kNumericHash = R"sql(pg_catalog.hash_numeric_extended(${value}::numeric, ${seed}))sql";
const char* const kTextHash = R"sql(pg_catalog.hashtextextended(${value}::text, ${seed}))sql";
const char* const kSourceValue = R"sql((${column})::${stage_type})sql";
const char* const kRawValue = R"sql(${row}.${column})sql";
// (Whether it has a digit at all first: most values have none, and skip the longer match. A
// masked number keeps its last four digits, so both sides agree on it.)
const char* const kFreeTextValue = R"sql((CASE WHEN (${value})::text OPERATOR(pg_catalog.~) '[0-9]' AND (${value})::text OPERATOR(pg_catalog.~) '[0-9*]([^[:alnum:]*]{0,4}[0-9*]){12,}' THEN pg_catalog.translate((${value})::text, '0123456789*', '###########') ELSE (${value})::text END))sql";
// A card number as sicoop.mask_card masks it, on the source side.
const char* const kMaskedValue = R"sql(nullif(pg_catalog.repeat('*', greatest(pg_catalog.length(pg_catalog.btrim(${value}, E' \t\n\r\f\v')) OPERATOR(pg_catalog.-) 4, 0)) OPERATOR(pg_catalog.||) pg_catalog.right(pg_catalog.btrim(${value}, E' \t\n\r\f\v'), 4), ''))sql";
const char* const kHashCombine = " OPERATOR(pg_catalog.#) ";

// A full comparison's deletions: the keys raw holds in the buckets that differ (stage_bucket)
// and the stage, which holds every source row of those buckets, does not.
const char* const kGoneKeys = R"sql(CREATE TEMP TABLE sicoop_gone_keys ON COMMIT DROP AS
SELECT r.${key} FROM (SELECT r.${key} FROM ${raw} r
                      WHERE ${bucket} IN (SELECT b.bucket FROM sicoop.stage_bucket b) OFFSET 0) r
WHERE ${not_in_stage})sql";

// Raw's side of the comparison: each row's bucket and hash, summed in the warehouse as the
// source's arrive (row_hash_delta.hpp).
const char* const kRawRowHashes = R"sql(
SELECT ${bucket}, ${row_hash} FROM ${raw} r)sql";

// A column's 64-bit hash for the row hash, seeded by its position: the same from the source's
// column (read as the stage reads it) and from raw's, by value (55.7 and 55.70 hash alike), with
// card numbers masked on the source side as raw holds them (as sicoop.mask_card does); NULL
// hashes to the column's own constant.
//
// Free text is masked in raw (raw_columns), which the source cannot do as sicoop does: both sides
// hash a value that holds what looks like a card number (13 or more digits or '*', at most four
// other characters between two) with its digits and '*' made '#', so that a masked number and
// the source's hash alike. The price: an edit of such a value that changes digits only goes
// unseen by the comparison (the lookback's re-reads still see it); where the two sides judge a
// value differently (a digit of another script), its row is read again at each full run, and
// found unchanged.
std::string column_hash(const SourceTable& t, const std::string& column, const std::string& type,
                        const std::string& row, bool source_side, int position) {
    const std::string seed = std::to_string(position);
    std::string value = source_side ? fill(kSourceValue, {{"column", column}, {"stage_type", stage_type(type)}})
                                    : fill(kRawValue, {{"row", row}, {"column", column}});
    if (t.is_free_text(column, type)) value = fill(kFreeTextValue, {{"value", value}});
    const char* hash = kTextHash;
    if (type == "date" || type == "timestamp")
        hash = kTimeHash;
    else if (type.rfind("numeric", 0) == 0)
        hash = kNumericHash;
    else if (t.is_card_number(column) && source_side)
        value = fill(kMaskedValue, {{"value", value}});
    return fill(kHashOf, {{"hash", fill(hash, {{"value", value}, {"seed", seed}})}, {"seed", seed}});
}

}  // namespace

std::string row_hash_sql(const SourceTable& t, const std::string& row, bool source_side) {
    std::string hash;
    int position = 1;
    for (const auto& [col, type] : t.columns)
        hash += (hash.empty() ? "" : kHashCombine) + column_hash(t, col, type, row, source_side, position++);
    return "(" + hash + ")";
}

namespace raw {

// A full run's comparison of table `t` (raw_<t>, `bits` of key hash per bucket): the source
// sends each row's bucket and hash while raw's are read, both summed per bucket in the
// warehouse; the buckets that differ go to sicoop.stage_bucket, and `rows` becomes the copy of
// their rows, and of nothing else. (The movements' day totals, for the reconciliation, are
// read in the same snapshot once the rows are: plan_compared.)
void add_full_comparison(std::vector<Action>& actions, const SourceTable& t, int bits, BulkCopy& rows) {
    BulkCopy hashes = source_copy(t, "stage_bucket", {"bucket"}, BulkCopy::Rows::RowHashes);
    hashes.key_column = t.key;
    hashes.bucket_bits = bits;
    hashes.row_hash = row_hash_sql(t, "", true);
    hashes.local_row_hashes = fill(kRawRowHashes, {{"bucket", row_bucket_sql("r." + t.key, bits)},
                                                   {"row_hash", row_hash_sql(t, "r", false)},
                                                   {"raw", raw_of(t)}});
    actions.push_back(bulk_action(hashes, t.name));
    rows.rows = BulkCopy::Rows::RowsInBuckets;
    rows.key_column = t.key;
    rows.bucket_bits = bits;
    rows.keys_query = "SELECT array_agg(bucket)::text FROM sicoop.stage_bucket";
}

// What raw holds in a bucket that differs and the source no longer has: its keys first, then
// the deletion by key. The buckets are filtered first, in a subquery OFFSET 0 keeps apart: in
// one statement the planner, which cannot tell how few rows a bucket list keeps, took every raw
// key in key order through the primary key to anti-join the stage (6.1 s at 10M movements,
// against 1.8-2.0 s with the bucket filter first, on one sequential pass).
void add_bucket_deletions(std::vector<Action>& actions, const SourceTable& t, int bits, const RunContext& ctx) {
    actions.push_back(sql_action(drop_temp_table_sql("sicoop_gone_keys"), t.name));
    actions.push_back(sql_action(fill(kGoneKeys, {{"key", t.key},
                                                  {"raw", raw_of(t)},
                                                  {"bucket", row_bucket_sql("r." + t.key, bits)},
                                                  {"not_in_stage", not_in_stage(t, ctx)}}),
                                 t.name));
    const std::string gone = fill(R"sql(r.${key} IN (SELECT g.${key} FROM pg_temp.sicoop_gone_keys g))sql", {{"key", t.key}});
    actions.push_back(sql_action(delete_with_tombstones_sql(t.name, t.key, gone), t.name));
}

namespace {

// The source's key checksums per bucket, in the table's snapshot.
BulkCopy key_checksums(const SourceTable& t, BulkCopy::Timing timing) {
    BulkCopy checksums =
        source_copy(t, "stage_key_checksum", {"bucket", "keys", "key_hash_sum"}, BulkCopy::Rows::KeyChecksums);
    checksums.key_column = t.key;
    checksums.timing = timing;
    return checksums;
}

}  // namespace

void send_key_checksums(std::vector<Action>& actions, const SourceTable& t) {
    actions.push_back(bulk_action(key_checksums(t, BulkCopy::Timing::SendOnly), t.name));
}

// Deletions, for a table read by xmin: key checksums per bucket on both sides; only the keys of
// the buckets that differ are read, and raw keys missing from them were deleted.
void add_keyed_deletions(std::vector<Action>& actions, const SourceTable& t) {
    actions.push_back(bulk_action(key_checksums(t, BulkCopy::Timing::LandSent), t.name));
    actions.push_back(sql_action("TRUNCATE sicoop.stage_bucket", t.name));
    actions.push_back(sql_action(fill(R"sql(
INSERT INTO sicoop.stage_bucket (bucket)
SELECT bucket FROM sicoop.stage_key_checksum s
FULL JOIN (SELECT ${bucket} AS bucket, count(*) AS keys,
                  sum(${hash})::numeric AS key_hash_sum
           FROM ${raw} r GROUP BY 1) l USING (bucket)
WHERE (s.keys, s.key_hash_sum) IS DISTINCT FROM (l.keys, l.key_hash_sum))sql",
                                      {{"bucket", key_bucket_sql("r." + t.key)},
                                       {"hash", key_hash_sql("r." + t.key)},
                                       {"raw", raw_of(t)}}),
                                 t.name));
    BulkCopy keys = source_copy(t, "stage_key", {"record_id"}, BulkCopy::Rows::KeysInBuckets);
    keys.key_column = t.key;
    keys.keys_query = "SELECT array_agg(bucket)::text FROM sicoop.stage_bucket";
    actions.push_back(bulk_action(keys, t.name));
    const std::string gone = fill(R"sql(${bucket} IN (SELECT bucket FROM sicoop.stage_bucket)
    AND NOT EXISTS (SELECT 1 FROM sicoop.stage_key k WHERE k.record_id = r.${key}))sql",
                                  {{"bucket", key_bucket_sql("r." + t.key)}, {"key", t.key}});
    actions.push_back(sql_action(delete_with_tombstones_sql(t.name, t.key, gone), t.name));
}

}  // namespace raw

}  // namespace sicoop
