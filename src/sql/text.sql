-- The cleaning functions the trusted layer applies, for analysts to reuse: text, names, ages
-- and card numbers (masking, detection).

------------------------------------------------------------------------------------------
-- Cleaning rules (the trusted layer). Kept as SQL functions so analysts can reuse them.
------------------------------------------------------------------------------------------
-- Trim, collapse inner runs of white space, mask card numbers (a number typed into a
-- description), upper-case with accents kept; blank -> NULL.
-- (C++, src/sql_functions.cpp: it runs on every text field of every row.)
CREATE OR REPLACE FUNCTION clean_text(value text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_clean_text';

-- First word of the cleaned name. (C++, src/sql_functions.cpp, as clean_text: it runs on every
-- member, and an SQL function with a pinned search_path is never inlined.)
CREATE OR REPLACE FUNCTION first_name(nome text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_first_name';

-- Everything after the first word of the cleaned name, NULL if there is none.
CREATE OR REPLACE FUNCTION last_name(nome text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_last_name';

-- Whole years lived on a date (birthday-aware; someone born on 29 February turns a year
-- older on 1 March in common years): date_part('year', age(on_date, birth)), by PostgreSQL's own
-- functions called from C. NULL without a birth date or for a future one.
CREATE OR REPLACE FUNCTION age_years(birth date, on_date date) RETURNS int
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_age_years';

-- The text with every possible card number masked to its last four digits, as sicoop does to
-- every error it reports or logs and to the trusted layer's free text: 13 or more decimal
-- digits of any script, in groups joined by spaces, dashes, dots, slashes or invisible
-- characters; joined by any other run of up to four non-alphanumeric characters (commas,
-- colons, ';', '|', '+', '~', '#', parentheses, ...), only a Luhn-valid 13-19 digit number in
-- groups of four or more (a list of small numbers is not a card). C++: src/steps/text_rules.cpp.
CREATE OR REPLACE FUNCTION _redact_card_numbers(value text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_redact_card_numbers';

-- Whether the text holds what could be a card number: what _redact_card_numbers masks, or one
-- masked already ('*' read as a masked digit: '************1111'), as the COPY filter leaves
-- a card-like key (the key rule no_card_number rejects it).
CREATE OR REPLACE FUNCTION contains_card_number(value text) RETURNS boolean
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_contains_card_number';

-- Every character but the last four replaced by '*' (ASCII white space around it ignored; blank
-- -> NULL). (C++: the code the COPY filter masks raw's card numbers with.)
CREATE OR REPLACE FUNCTION mask_card(numero text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_mask_card';

-- Two data-quality rules' tests on every field of every row (sicoop._row_rule_checks), in
-- C++ instead of a regular expression per field (src/steps/text_rules.cpp): a control
-- character (rule no_control_chars: C0 but tab, newline and carriage return, DEL, C1), and
-- whether the rule trimmed's expression could match at all (not for printable ASCII that
-- neither starts nor ends with a space: most keys).
CREATE OR REPLACE FUNCTION _has_control_characters(value text) RETURNS boolean
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_has_control_characters';
CREATE OR REPLACE FUNCTION _may_need_trimming(value text) RETURNS boolean
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'sicoop_may_need_trimming';
