// Row-level SQL functions written in C++ because SQL does them badly: the trusted layer's
// text cleaning runs on every text field of every row, and a regular expression per call
// made it the slowest part of a load.
#include "pg.hpp"
#include "steps/text_rules.hpp"

extern "C" {
#include "common/hmac.h"
#include "common/sha2.h"
#include "utils/formatting.h"
PGDLLEXPORT Datum sicoop_clean_text(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_card_hash(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum sicoop_redact_card_numbers(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(sicoop_clean_text);
PG_FUNCTION_INFO_V1(sicoop_card_hash);
PG_FUNCTION_INFO_V1(sicoop_redact_card_numbers);
}

// sicoop.clean_text(text): trimmed, inner white space collapsed, card numbers masked to their
// last four digits, upper-cased in the collation of the argument (accents kept: 'joão' ->
// 'JOÃO'); blank -> NULL.
Datum sicoop_clean_text(PG_FUNCTION_ARGS) {
    text* input = PG_GETARG_TEXT_PP(0);
    Oid collation = PG_GET_COLLATION();
    const char* data = VARDATA_ANY(input);
    const size_t length = VARSIZE_ANY_EXHDR(input);
    char* upper = nullptr;
    bool blank = false;
    sicoop::sql_entry([&] {
        // A card number typed into a free-text field (a description) is masked too.
        std::string collapsed = sicoop::redact_card_numbers(sicoop::collapse_whitespace(std::string_view(data, length)));
        blank = collapsed.empty();
        if (!blank) {
            const char* c = collapsed.c_str();
            size_t n = collapsed.size();
            sicoop::pg_call([&] { upper = str_toupper(c, n, collation); });
        }
        return (Datum) 0;
    });
    if (blank) PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(upper));
}

// sicoop._card_hash(numero text, key bytea): HMAC-SHA-256 of a card number under the
// warehouse's key (sicoop.card_hash_key). Raw keeps it instead of the number, to see a
// number change without storing it (PCI DSS 3: a keyed hash of the whole PAN).
// Plain PostgreSQL calls only, no C++ object: errors are raised directly.
Datum sicoop_card_hash(PG_FUNCTION_ARGS) {
    text* numero = PG_GETARG_TEXT_PP(0);
    bytea* key = PG_GETARG_BYTEA_PP(1);
    constexpr size_t kMinKeyBytes = 16;
    if (VARSIZE_ANY_EXHDR(key) < kMinKeyBytes)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("sicoop: a card hash key has at least %zu bytes", kMinKeyBytes)));
    uint8 digest[PG_SHA256_DIGEST_LENGTH];
    pg_hmac_ctx* ctx = pg_hmac_create(PG_SHA256);
    if (ctx == nullptr) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    if (pg_hmac_init(ctx, reinterpret_cast<const uint8*>(VARDATA_ANY(key)), VARSIZE_ANY_EXHDR(key)) < 0 ||
        pg_hmac_update(ctx, reinterpret_cast<const uint8*>(VARDATA_ANY(numero)), VARSIZE_ANY_EXHDR(numero)) < 0 ||
        pg_hmac_final(ctx, digest, sizeof digest) < 0) {
        const char* why = pstrdup(pg_hmac_error(ctx));
        pg_hmac_free(ctx);
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("sicoop: could not hash a card number: %s", why)));
    }
    pg_hmac_free(ctx);
    bytea* result = static_cast<bytea*>(palloc(VARHDRSZ + sizeof digest));
    SET_VARSIZE(result, VARHDRSZ + sizeof digest);
    memcpy(VARDATA(result), digest, sizeof digest);
    PG_RETURN_BYTEA_P(result);
}

// sicoop._redact_card_numbers(text): the text with every possible card number masked to its
// last four digits (what sicoop does to every error it reports or logs).
Datum sicoop_redact_card_numbers(PG_FUNCTION_ARGS) {
    text* input = PG_GETARG_TEXT_PP(0);
    const char* data = VARDATA_ANY(input);
    const size_t length = VARSIZE_ANY_EXHDR(input);
    char* redacted = nullptr;
    sicoop::sql_entry([&] {
        std::string out = sicoop::redact_card_numbers(std::string_view(data, length));
        sicoop::pg_call([&] { redacted = pnstrdup(out.data(), out.size()); });
        return (Datum) 0;
    });
    PG_RETURN_TEXT_P(cstring_to_text(redacted));
}
