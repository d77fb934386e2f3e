-- 1.4's hardening (issue 16): each block replays one finding of the 1.3 review, as the
-- reviewer did it, and checks that it no longer works.
--   1. operator -> superuser through extended statistics, and through a re-created extension
--   2. no card number in statistics
--   3. masking that matches what people type; keys that cannot be masked are rejected
--   4. books that NaN cannot blind
--   5. errors that say what happened, and no row value in the source's log
--   6. alerts and progress for the right people; every function pins its search_path
--   7. export_flat writes through a temporary file and refuses links
-- (Scheduling under password authentication: 50_cron.sql.)
\ir helpers/reset.sql
SELECT plan(56);

\o /dev/null
SET client_min_messages = warning;
\ir helpers/test_roles.sql
SELECT pg_temp.drop_test_roles(ARRAY['sicoop_test_h_operator', 'sicoop_test_h_nobody', 'sicoop_test_source_reader']);
CREATE ROLE sicoop_test_h_operator LOGIN;
CREATE ROLE sicoop_test_h_nobody LOGIN;
CREATE ROLE sicoop_test_source_reader LOGIN PASSWORD 'reader-pw';
SELECT dblink_exec(:'srcconn', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO sicoop_test_source_reader');
-- A database created before PostgreSQL 15, where roles may create in schema public.
GRANT CREATE ON SCHEMA public TO sicoop_test_h_operator;
DROP TABLE IF EXISTS public.sicoop_test_h_trap;
CREATE TABLE public.sicoop_test_h_trap (who text);
GRANT INSERT ON public.sicoop_test_h_trap TO PUBLIC;
RESET client_min_messages;
\o
\ir helpers/error_of.sql
-- What the server log received since byte `since` (the source is in this cluster too).
CREATE FUNCTION pg_temp.log_since(since bigint) RETURNS text LANGUAGE sql AS $$
  SELECT pg_read_file('server.log', since, (pg_stat_file('server.log')).size - since)
$$;
-- A 13-or-more-digit run (any decimal digits, common separators between them skipped).
CREATE FUNCTION pg_temp.has_long_digit_run(value text) RETURNS boolean LANGUAGE sql AS $$
  SELECT regexp_replace(translate(value, '０１２３４５６７８９', '0123456789'), '[ ,.:/_-]+', '', 'g') ~ '[0-9]{13,}'
$$;

------------------------------------------------------------------------------------------
-- 1. The handover check. The operator plants code where a superuser's ANALYZE, run or restore
--    would execute it: an expression in extended statistics, a CHECK constraint. Every
--    superuser path refuses the warehouse, naming the object and the statement to drop it --
--    also after DROP EXTENSION and CREATE EXTENSION, which in 1.3 reset the record of the
--    handover.
------------------------------------------------------------------------------------------
SELECT lives_ok($$SELECT sicoop.grant_operator('sicoop_test_h_operator')$$, 'a superuser hands the warehouse to an operator');
\o /dev/null
SET ROLE sicoop_test_h_operator;
CREATE FUNCTION public.sicoop_test_h_evil(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1';
RESET ROLE;
\o
SELECT throws_like($$CREATE STATISTICS public.sicoop_test_h_stats ON (public.sicoop_test_h_evil('x' || id_associado)), nome FROM sicoop.raw_associado$$,
                   '%the warehouse takes nothing sicoop does not define%', 'the guard refuses the statistics at the statement (1.6)');
-- The handover check behind it, as a warehouse from before 1.6 could hold them: planted with the guard off.
\o /dev/null
ALTER EVENT TRIGGER sicoop_guard DISABLE;
SET ROLE sicoop_test_h_operator;
CREATE STATISTICS public.sicoop_test_h_stats ON (public.sicoop_test_h_evil('x' || id_associado)), nome FROM sicoop.raw_associado;
RESET ROLE;
ALTER EVENT TRIGGER sicoop_guard ENABLE;
\o
SELECT throws_like($$SELECT sicoop.revoke_operator('sicoop_test_h_operator')$$,
                   '%statistics%sicoop_test_h_evil%DROP STATISTICS public.sicoop_test_h_stats%',
                   'revoke_operator refuses extended statistics the operator made on a warehouse table, naming the DROP');
SELECT throws_like($$SELECT sicoop.grant_operator('sicoop_test_h_operator')$$, '%DROP STATISTICS public.sicoop_test_h_stats%',
                   'and so does grant_operator');
SELECT is((SELECT relowner::regrole::text FROM pg_class WHERE oid = 'sicoop.warehouse_info'::regclass), 'sicoop_test_h_operator',
          'the refused revoke changed nothing: the operator still owns the warehouse');
\o /dev/null
ALTER EVENT TRIGGER sicoop_guard DISABLE;
SET ROLE sicoop_test_h_operator;
DROP STATISTICS public.sicoop_test_h_stats;
ALTER TABLE sicoop.raw_associado ADD CONSTRAINT sicoop_test_h_check CHECK (public.sicoop_test_h_evil(nome) IS NOT NULL);
RESET ROLE;
SET client_min_messages = warning;
DROP EXTENSION sicoop_etl;
\o
SELECT throws_like('CREATE EXTENSION sicoop_etl',
                   '%constraint sicoop.raw_associado.sicoop_test_h_check%DROP CONSTRAINT sicoop_test_h_check%',
                   'after DROP EXTENSION, CREATE EXTENSION refuses to adopt a warehouse with a CHECK the operator planted');
\o /dev/null
SET ROLE sicoop_test_h_operator;
ALTER TABLE sicoop.raw_associado DROP CONSTRAINT sicoop_test_h_check;
ALTER TABLE sicoop.raw_associado ALTER COLUMN nome SET DEFAULT public.sicoop_test_h_evil('x');
RESET ROLE;
\o
SELECT throws_like('CREATE EXTENSION sicoop_etl', '%raw_associado.nome%DROP DEFAULT%',
                   'nor one with a column default the operator planted');
\o /dev/null
SET ROLE sicoop_test_h_operator;
ALTER TABLE sicoop.raw_associado ALTER COLUMN nome DROP DEFAULT;
RESET ROLE;
\o
SELECT lives_ok('CREATE EXTENSION sicoop_etl', 'once they are gone, CREATE EXTENSION adopts the warehouse');
SELECT lives_ok($$SELECT sicoop.grant_operator('sicoop_test_h_operator')$$, 'and hands it to the operator again');
SELECT lives_ok($$SELECT sicoop.revoke_operator('sicoop_test_h_operator')$$, 'a clean warehouse comes back to the superuser');
SELECT is_empty($$SELECT who FROM public.sicoop_test_h_trap$$, 'none of what the operator planted ran');

------------------------------------------------------------------------------------------
-- 2.-3. Card numbers as people type them, in free text and in keys; invisible characters;
--    padded keys. Then: no layer, no statistic, no file holds a full number.
------------------------------------------------------------------------------------------
\o /dev/null
SELECT dblink_exec(:'srcconn', $$INSERT INTO associado VALUES
  (E'ASSOC-ZW', E'Ana\u200bMaria\u202e Souza\ufeff', '1990-01-01', 'solteira', 'superior'),
  ('  ASSOC-PAD ', 'Padded Key', '1990-01-01', 'solteira', 'superior')$$);
SELECT dblink_exec(:'srcconn', $$INSERT INTO movimentacao_cartao VALUES
  ('MOV-H1', 'CARTAO-201', 'PAGTO CARTAO 4111,1111,1111,1111', 10.00, '2025-08-14 09:00'),
  ('MOV-H2', 'CARTAO-201', E'PAGTO \uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11', 11.00, '2025-08-14 09:01'),
  ('MOV-H3', 'CARTAO-201', 'PAGTO 4111 : 1111 : 1111 : 1111', 12.00, '2025-08-14 09:02'),
  ('MOV-H4', 'CARTAO-201', E'PAGTO 4111\u200b1111\u200b1111\u200b1111', 13.00, '2025-08-14 09:03'),
  ('MOV-NEG 4111111111111111', 'CARTAO-201', 'id with a card number', 14.00, '2025-08-14 09:04'),
  ('  MOV-B24 ', 'CARTAO-201', 'padded id', 15.00, '2025-08-14 09:05')$$);
\o
SELECT lives_ok('CALL sicoop.run_pipeline()', 'a first load with card numbers typed every way succeeds');
SELECT is((SELECT count(*)::int FROM sicoop.vw_movimentacao_flat WHERE pg_temp.has_long_digit_run(des_transacao_movimento::text) OR pg_temp.has_long_digit_run(numero_cartao::text)), 0,
          'no description in the flat view holds a full card number (commas, full-width digits, colons, zero-width joiners)');
SELECT results_eq($$SELECT descricao_movimentacao::text FROM sicoop.trusted_movimentacao_cartao
                    WHERE id_movimentacao_cartao IN ('MOV-H1', 'MOV-H3') ORDER BY 1$$,
                  $$VALUES ('PAGTO **** : **** : **** : 1111'), ('PAGTO CARTAO ****,****,****,1111')$$,
                  'the last four digits stay, the separators too') ;
SELECT is((SELECT count(*)::int FROM sicoop.raw_movimentacao_cartao WHERE pg_temp.has_long_digit_run(descricao_movimentacao::text)), 0,
          'raw keeps no full number typed into a description either');
SELECT results_eq($$SELECT rule_name FROM sicoop.reject WHERE table_name = 'movimentacao_cartao' AND record_id LIKE 'MOV-NEG%'$$,
                  $$VALUES ('movimentacao_id_no_card_number')$$,
                  'a movement id holding a card number is rejected by a rule of its own (an id cannot be masked)');
SELECT is((SELECT count(*)::int FROM sicoop.reject WHERE pg_temp.has_long_digit_run(record_id) OR pg_temp.has_long_digit_run(record::text)
                                                       OR pg_temp.has_long_digit_run(reason)), 0,
          'and the reject keeps it masked');
SELECT is((SELECT count(*)::int FROM sicoop.fato_movimentacao_cartao WHERE pg_temp.has_long_digit_run(id_movimentacao_cartao)), 0,
          'no fact row carries it');
SELECT results_eq($$SELECT record_id, rule_name FROM sicoop.reject WHERE rule_name LIKE '%trimmed' ORDER BY 1$$,
                  $$VALUES ('  ASSOC-PAD ', 'associado_id_trimmed'), ('  MOV-B24 ', 'movimentacao_id_trimmed')$$,
                  'padded keys are rejected by the trimmed rule, as they are (not silently changed)');
SELECT is((SELECT nome || ' ' || sobrenome FROM sicoop.trusted_associado WHERE id_associado = 'ASSOC-ZW'), 'ANAMARIA SOUZA',
          'zero-width, bidi-override and BOM characters are removed in trusted');
SELECT is((SELECT count(*)::int FROM sicoop.dim_associado WHERE concat(nome_associado, sobrenome_associado) ~ E'[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]'), 0,
          'and reach no dimension');

-- Statistics: a DBA's ANALYZE of the whole schema after first loads, incremental runs,
-- full checks and rebuilds; stage columns holding source values never get any.
\o /dev/null
SELECT dblink_exec(:'srcconn', $$UPDATE cartao SET numero_cartao = '4111111111100201' WHERE id_cartao = 'CARTAO-202'$$);
SELECT dblink_exec(:'srcconn', $$INSERT INTO movimentacao_cartao VALUES
  ('MOV-H5', 'CARTAO-202', 'PAGTO 5500 0000 0000 0004', 16.00, '2025-08-15 08:00')$$);
SET sicoop.as_of = '2025-08-15 12:00:00-03';
CALL sicoop.run_pipeline();
SET sicoop.as_of = '2025-08-15 12:10:00-03';
CALL sicoop.run_pipeline(full => true);
SET sicoop.full_run = 'rebuild';
SET sicoop.as_of = '2025-08-15 12:20:00-03';
CALL sicoop.run_pipeline(full => true);
RESET sicoop.full_run;
ANALYZE;
\o
SELECT is_empty($$SELECT s.tablename, s.attname FROM pg_stats s
                  WHERE s.schemaname = 'sicoop'
                    AND (SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = format('sicoop.%I', s.tablename)::regclass
                         AND a.attname = s.attname) IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype, 'jsonb'::regtype)
                    AND EXISTS (SELECT 1 FROM unnest(coalesce(s.most_common_vals::text::text[], '{}') || coalesce(s.histogram_bounds::text::text[], '{}')) v
                                WHERE pg_temp.has_long_digit_run(v))$$,
                'no statistic of schema sicoop holds a 13-or-more-digit run (after first, incremental, full and rebuild runs)');
SELECT is_empty($$SELECT d.stxoid FROM pg_statistic_ext_data d JOIN pg_statistic_ext e ON e.oid = d.stxoid
                  WHERE e.stxnamespace = 'sicoop'::regnamespace
                    AND pg_temp.has_long_digit_run(concat(d.stxdmcv::text, d.stxdexpr::text))$$,
                'nor any extended statistic');
SELECT is_empty($$SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                  WHERE c.relnamespace = 'sicoop'::regnamespace AND c.relname LIKE 'stage\_%' AND a.attnum > 0
                    AND c.relname <> 'stage_source_column'  -- the source's catalog (names and types), no row's value
                    AND a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'jsonb'::regtype) AND a.attstattarget <> 0$$,
                'the stage''s text columns (source values, unmasked) are never given statistics, even by autovacuum');

------------------------------------------------------------------------------------------
-- 4. Books that NaN cannot blind: a NaN amount (rejected) on a day, then a wrong fact amount
--    on the same day. In 1.3 NaN = NaN balanced the day.
------------------------------------------------------------------------------------------
\o /dev/null
SELECT dblink_exec(:'srcconn', $$INSERT INTO movimentacao_cartao VALUES ('MOV-NAN', 'CARTAO-201', 'nan', 'NaN', '2025-08-15 09:00')$$);
SET sicoop.as_of = '2025-08-15 12:30:00-03';
\o
SELECT lives_ok('CALL sicoop.run_pipeline()', 'a run with a NaN amount at the source succeeds');
SELECT ok((SELECT count(*) = 1 FROM sicoop.reject WHERE record_id = 'MOV-NAN'), 'the NaN row is rejected');
SELECT ok((SELECT bool_and(balanced) FROM sicoop.reconciliation), 'and the books balance');
\o /dev/null
UPDATE sicoop.fato_movimentacao_cartao SET valor_movimentacao = valor_movimentacao + 1
WHERE id_movimentacao_cartao = (SELECT min(id_movimentacao_cartao) FROM sicoop.fato_movimentacao_cartao WHERE data_hora_movimentacao::date = '2025-08-15');
SET sicoop.as_of = '2025-08-15 12:40:00-03';
\o
-- (At the top level, as psql and pg_cron call it: each step commits, the failure too.)
\set ON_ERROR_STOP 0
CALL sicoop.run_pipeline();
\set ON_ERROR_STOP 1
SELECT is((SELECT balanced FROM sicoop.reconciliation WHERE dia = '2025-08-15'), false,
          'a wrong fact amount on the NaN''s day is caught: the day does not balance');
SELECT is((SELECT source_rows - fato_rows - reject_rows FROM sicoop.reconciliation WHERE dia = '2025-08-15'), 0::bigint,
          '(the NaN row still counts among the day''s rows)');
SELECT is((SELECT full_run_owed_by IS NOT NULL FROM sicoop.warehouse_info), true, 'and the next run is owed to be a full one');
\o /dev/null
SET sicoop.full_run = 'rebuild';
SET sicoop.as_of = '2025-08-15 12:50:00-03';
CALL sicoop.run_pipeline(full => true);
RESET sicoop.full_run;
\o
SELECT ok((SELECT bool_and(balanced) FROM sicoop.reconciliation), 'and the books balance again');

------------------------------------------------------------------------------------------
-- 5. Errors that say what happened; no query sent to the source can fail on a row's value,
--    so the source's log never holds one.
------------------------------------------------------------------------------------------
SELECT (pg_stat_file('server.log')).size AS log_start \gset
\o /dev/null
SELECT dblink_exec(:'srcconn', $$ALTER TABLE cartao ALTER COLUMN data_emissao TYPE text$$);
SELECT dblink_exec(:'srcconn', $$UPDATE cartao SET data_emissao = 'ZZMARK-4111111111117777' WHERE id_cartao = 'CARTAO-201'$$);
SET sicoop.as_of = '2025-08-15 13:00:00-03';
\o
SELECT pg_temp.error_of('CALL sicoop.run_pipeline()') AS cast_error \gset
SELECT is((:'cast_error'::text[])[1], '22007', 'a date the source holds as text and cannot be one fails as a data error (22007), not a connection error (08000)');
SELECT alike((:'cast_error'::text[])[2], '%cartao.data_emissao (text there) is not a valid date%',
              'the error names the source column, its type there and what it should be');
SELECT ok(position('ZZMARK' IN array_to_string(:'cast_error'::text[], ' ')) = 0, 'the error does not quote the value');
SELECT pg_temp.error_of('CALL sicoop.run_pipeline(full => true)') AS full_error \gset
SELECT alike((:'full_error'::text[])[2], '%cannot compare the table by row checksums%public.cartao.data_emissao is text, not date%',
             'a full run''s comparison, which would need the source to cast it, refuses up front, naming the column');
SELECT ok(position('ZZMARK' IN pg_temp.log_since(:log_start)) = 0, 'and no log line holds the value: the source was never asked to cast it');
\o /dev/null
SELECT dblink_exec(:'srcconn', $$ALTER TABLE cartao ALTER COLUMN data_emissao TYPE date USING NULL$$);
SELECT dblink_exec(:'srcconn', $$ALTER TABLE movimentacao_cartao ALTER COLUMN valor_movimentacao TYPE text$$);
SELECT dblink_exec(:'srcconn', $$UPDATE movimentacao_cartao SET valor_movimentacao = 'ZZMARK 4111111111118888' WHERE id_movimentacao_cartao = 'MOV-301'$$);
SET sicoop.as_of = '2025-08-15 13:10:00-03';
\o
SELECT pg_temp.error_of('CALL sicoop.run_pipeline()') AS sum_error \gset
SELECT alike((:'sum_error'::text[])[2], '%movimentacao_cartao.valor_movimentacao (text there) is not a valid numeric%',
             'an amount that is no number: the error says which column, not "COPY file signature not recognized"');
SELECT ok(position('ZZMARK' IN pg_temp.log_since(:log_start)) = 0, 'the day totals never cast it at the source: no log line holds it');
\o /dev/null
SELECT dblink_exec(:'srcconn', $$UPDATE movimentacao_cartao SET valor_movimentacao = '55.75' WHERE id_movimentacao_cartao = 'MOV-301'$$);
SELECT dblink_exec(:'srcconn', $$ALTER TABLE movimentacao_cartao ALTER COLUMN valor_movimentacao TYPE numeric(10, 2) USING valor_movimentacao::numeric$$);
SET sicoop.source_timeout = 1;
SET sicoop.as_of = '2025-08-15 13:20:00-03';
\o
SELECT alike((pg_temp.error_of('CALL sicoop.run_pipeline(full => true)'))[2], '%timeout%',
             'sicoop.source_timeout reached at the source says timeout (not a COPY format error)');
RESET sicoop.source_timeout;
SELECT throws_like($$SELECT sicoop.connect_source('localhost', 0, 'x', 'y')$$, '%port%1%65535%',
                   'connect_source with port 0 says the port is wrong, not that the host is required');

------------------------------------------------------------------------------------------
-- 6. Alerts carry identifiers only; any role may LISTEN. The progress view is not broken by
--    a hostile application_name. Every function pins its search_path.
------------------------------------------------------------------------------------------
\o /dev/null
SELECT dblink_connect('listener', format('host=localhost port=%s dbname=%s user=sicoop_test_h_nobody', :'pgport', current_database()));
SELECT dblink_exec('listener', 'LISTEN sicoop_alerts');
SELECT dblink_connect('hostile', format('host=localhost port=%s dbname=%s user=sicoop_test_h_nobody', :'pgport', current_database()));
SELECT dblink_exec('hostile', $$SET application_name = 'sicoop_etl run 99999999999999999999 x'$$);
SELECT dblink_exec(:'srcconn', $$INSERT INTO movimentacao_cartao VALUES ('MOV-NEG-ALERT', 'CARTAO-201', 'negative', -5, '2025-08-15 10:00')$$);
UPDATE sicoop.dq_rule SET severity = 'fail' WHERE rule_name = 'movimentacao_valor_non_negative';
SET sicoop.as_of = '2025-08-15 13:30:00-03';
\set ON_ERROR_STOP 0
CALL sicoop.run_pipeline();
\set ON_ERROR_STOP 1
UPDATE sicoop.dq_rule SET severity = 'reject' WHERE rule_name = 'movimentacao_valor_non_negative';
SELECT * FROM dblink('listener', 'SELECT 1') AS t(x int);
CREATE TEMP TABLE heard AS SELECT * FROM dblink_get_notify('listener');
\o
SELECT ok((SELECT count(*) > 0 FROM heard WHERE notify_name = 'sicoop_alerts'),
          'a role with nothing but LOGIN hears the failed run''s alert (any role may LISTEN: documented)');
SELECT ok((SELECT bool_and(NOT (h.extra::jsonb ? 'error') AND NOT (h.extra::jsonb ? 'error_message')
                           AND position('MOV-NEG-ALERT' IN h.extra) = 0 AND position('must be' IN h.extra) = 0
                           AND h.extra::jsonb ? 'sqlstate' AND h.extra::jsonb ? 'run_id') FROM heard h),
          'its payload carries identifiers only (run, step, status, SQLSTATE, counts): no error text, no key');
SELECT lives_ok('SELECT * FROM sicoop.progress', 'a session calling itself "sicoop_etl run 99999999999999999999" does not break sicoop.progress');
SELECT is((SELECT count(*)::int FROM sicoop.progress), 0, 'nor appears in it: only the warehouse owner''s sessions are runs');
\o /dev/null
SELECT dblink_disconnect('listener'), dblink_disconnect('hostile');
\o
-- Two kinds are exempt, each for a reason: run_pipeline, a procedure that commits (PostgreSQL
-- forbids transaction control under a SET clause; it pins the search_path itself, from its
-- first statement), and the row-level functions in C (text cleaning, names, ages, card masks,
-- two rules' tests),
-- called once per row, which run no SQL and look no name up (a SET clause would cost a GUC save
-- and restore at every call). They are a class: the IMMUTABLE C functions of the extension's
-- library -- every C function that runs SQL (a step, the stream, the export) is VOLATILE.
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p
                  WHERE p.pronamespace = 'sicoop'::regnamespace
                    AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
                    AND p.oid::regprocedure <> 'sicoop.run_pipeline(boolean)'::regprocedure
                    AND NOT (p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c') AND p.provolatile = 'i'
                             AND p.probin LIKE '%sicoop_etl' AND p.prosrc LIKE 'sicoop\_%')$$,
                'every function and procedure of schema sicoop pins its search_path');
SELECT set_eq($$SELECT p.oid::regprocedure FROM pg_proc p
                WHERE p.pronamespace = 'sicoop'::regnamespace AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
                  AND p.provolatile = 'i'$$,
              $$SELECT unnest(ARRAY['sicoop.clean_text(text)', 'sicoop._redact_card_numbers(text)', 'sicoop.contains_card_number(text)',
                                    'sicoop.first_name(text)', 'sicoop.last_name(text)', 'sicoop.age_years(date,date)',
                                    'sicoop.mask_card(text)', 'sicoop._has_control_characters(text)',
                                    'sicoop._may_need_trimming(text)']::regprocedure[])$$,
              '(the exempt class, the IMMUTABLE C functions, is the row-level text, name, age, card and rule functions)');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p, unnest(p.proconfig) c
                  WHERE p.pronamespace = 'sicoop'::regnamespace AND c LIKE 'search\_path=%'
                    AND c NOT IN ('search_path=pg_catalog, pg_temp', 'search_path="pg_catalog, pg_temp"')$$,
                'to pg_catalog, pg_temp');

------------------------------------------------------------------------------------------
-- 7. export_flat: through a temporary file renamed into place; never through a link.
------------------------------------------------------------------------------------------
\o /dev/null
COPY (SELECT 1) TO PROGRAM 'rm -rf sicoop_test_h_exports && mkdir -p sicoop_test_h_exports';
COPY (SELECT 'untouched') TO PROGRAM 'cat > sicoop_test_h_exports/victim.txt';
COPY (SELECT 1) TO PROGRAM 'ln -s victim.txt sicoop_test_h_exports/flat.csv';
\o
SELECT current_setting('data_directory') || '/sicoop_test_h_exports' AS exports \gset
SELECT throws_like(format($$SELECT sicoop.export_flat(%L)$$, :'exports' || '/flat.csv'), '%is a symbolic link%',
                   'export_flat refuses a symbolic link at the target');
SELECT is(pg_read_file(:'exports' || '/victim.txt'), E'untouched\n', 'and the file the link points to is untouched');
\o /dev/null
COPY (SELECT 1) TO PROGRAM 'rm sicoop_test_h_exports/flat.csv && mkdir sicoop_test_h_exports/dir.csv';
\o
SELECT throws_like(format($$SELECT sicoop.export_flat(%L)$$, :'exports' || '/dir.csv'), '%is a directory%',
                   'export_flat refuses a directory at the target');
SELECT is(sicoop.export_flat(:'exports' || '/flat.csv'), (SELECT count(*) FROM sicoop.vw_movimentacao_flat),
          'export_flat writes the flat file');
SELECT is(array_length(string_to_array(rtrim(pg_read_file(:'exports' || '/flat.csv'), E'\n'), E'\n'), 1)::bigint,
          (SELECT count(*) + 1 FROM sicoop.vw_movimentacao_flat), 'all of it, with its header');
\o /dev/null
CREATE TEMP TABLE flat_mode (mode text);
COPY flat_mode FROM PROGRAM 'stat -c %a sicoop_test_h_exports/flat.csv';
\o
SELECT is((SELECT mode FROM flat_mode), '644', 'readable by others, as COPY TO a file makes it (the data scientists read it)');
-- A failed export (its query waits on a lock past lock_timeout) leaves the previous file whole.
\o /dev/null
SELECT dblink_connect('locker', format('host=localhost port=%s dbname=%s user=%s', :'pgport', current_database(), current_user));
SELECT dblink_exec('locker', 'BEGIN');
SELECT dblink_exec('locker', 'LOCK TABLE sicoop.fato_movimentacao_cartao IN ACCESS EXCLUSIVE MODE');
SET lock_timeout = '200ms';
\o
SELECT throws_ok(format($$SELECT sicoop.export_flat(%L)$$, :'exports' || '/flat.csv'), '55P03', NULL,
                 'an export that fails midway raises its error');
\o /dev/null
RESET lock_timeout;
SELECT dblink_exec('locker', 'ROLLBACK');
SELECT dblink_disconnect('locker');
\o
SELECT is(array_length(string_to_array(rtrim(pg_read_file(:'exports' || '/flat.csv'), E'\n'), E'\n'), 1)::bigint,
          (SELECT count(*) + 1 FROM sicoop.vw_movimentacao_flat), 'and the previous file is still whole');
SELECT set_eq(format($$SELECT pg_ls_dir(%L)$$, :'exports'), ARRAY['victim.txt', 'dir.csv', 'flat.csv'],
              'no temporary file is left behind');
\o /dev/null
COPY (SELECT 1) TO PROGRAM 'rm -rf sicoop_test_h_exports';
SET client_min_messages = warning;
REVOKE CREATE ON SCHEMA public FROM sicoop_test_h_operator;
DROP TABLE public.sicoop_test_h_trap;
DROP FUNCTION public.sicoop_test_h_evil(text);
\o

SELECT * FROM finish();
