-- Security: least privilege (operator and reader roles), card numbers never at rest nor in
-- errors, a search_path attack that must not run, and the source password kept out of the
-- server log. (The run lock no role can take: 40_robustness.sql; extreme inputs: 85_inputs.sql.)
\ir helpers/reset.sql
SELECT plan(65);

\o /dev/null
SET client_min_messages = warning;
\ir helpers/test_roles.sql
SELECT pg_temp.drop_test_roles(ARRAY['sicoop_test_member', 'sicoop_test_operator', 'sicoop_test_reader', 'sicoop_test_nobody', 'sicoop_test_mallory', 'sicoop_test_source_reader']);
CREATE ROLE sicoop_test_operator LOGIN;
CREATE ROLE sicoop_test_reader LOGIN;
CREATE ROLE sicoop_test_nobody LOGIN;
CREATE ROLE sicoop_test_member LOGIN IN ROLE sicoop_test_operator;
CREATE ROLE sicoop_test_mallory LOGIN;
-- The source account the operator connects with: it authenticates with a password
-- (test/env.sh gives it scram-sha-256 in pg_hba.conf), as postgres_fdw wants of non-superusers.
CREATE ROLE sicoop_test_source_reader LOGIN PASSWORD 'reader-pw';
SELECT dblink_exec(:'srcconn', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO sicoop_test_source_reader');
RESET client_min_messages;
SELECT format('host=localhost port=%s dbname=%s user=', :'pgport', current_database()) AS connto \gset
\o

\ir helpers/error_of.sql
-- What the server log received since byte `since`.
CREATE FUNCTION pg_temp.log_since(since bigint) RETURNS text LANGUAGE sql AS $$
  SELECT pg_read_file('server.log', since, (pg_stat_file('server.log')).size - since)
$$;

------------------------------------------------------------------------------------------
-- 1. A search_path attack: in a database where PUBLIC may create in schema public, mallory
--    defines = (varchar, varchar), which would make whoever calls it a superuser's
--    accomplice. A superuser then runs everything sicoop offers with the default search_path.
------------------------------------------------------------------------------------------
\o /dev/null
GRANT CREATE ON SCHEMA public TO PUBLIC;
CREATE TABLE public.sicoop_test_trap (who text);
GRANT INSERT ON public.sicoop_test_trap TO PUBLIC;
SET ROLE sicoop_test_mallory;
CREATE FUNCTION public.sicoop_test_evil_eq(varchar, varchar) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO public.sicoop_test_trap VALUES (current_user);
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'ALTER ROLE sicoop_test_mallory SUPERUSER';
  END IF;
  RETURN $1::text OPERATOR(pg_catalog.=) $2::text;
END
$f$;
CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.sicoop_test_evil_eq);
CREATE FUNCTION public.age(date, date) RETURNS interval LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO public.sicoop_test_trap VALUES (current_user);
  RETURN pg_catalog.age($1::timestamp, $2::timestamp);
END
$f$;
-- The trap is live: mallory's own unqualified comparison of two varchars picks it.
SET search_path = "$user", public;
SELECT 'a'::varchar = 'a'::varchar;
RESET search_path;
RESET ROLE;
\o
SELECT is((SELECT array_agg(who) FROM public.sicoop_test_trap), ARRAY['sicoop_test_mallory'],
          'the hostile = (varchar, varchar) is what an unqualified comparison picks (shown as mallory)');
\o /dev/null
SELECT dblink_exec(:'srcconn', $$UPDATE associado SET estado_civil = 'Viúva' WHERE id_associado = 'ASSOC-001';
                                 INSERT INTO movimentacao_cartao VALUES ('MOV-TRAP', 'CARTAO-201', 'trap', 1.00, '2025-08-15 12:00')$$);
SET search_path = "$user", public;
SET sicoop.as_of = '2025-08-15 12:00:00-03';
SELECT sicoop.connect_source('localhost', :pgport, :'srcdb', current_user);
CALL sicoop.run_pipeline();
SET sicoop.as_of = '2025-08-15 13:00:00-03';
CALL sicoop.run_pipeline(full => true);
SELECT * FROM sicoop.load_trusted();
SELECT sicoop.age_years('2000-01-01', '2025-08-15'), sicoop.last_name('Ana Silva'), sicoop.mask_card('4111111111111111'),
       sicoop.check_vigencia();
RESET search_path;
\o
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'sicoop_test_mallory'), false, 'mallory did not become a superuser');
SELECT is((SELECT count(*)::int FROM public.sicoop_test_trap WHERE who <> 'sicoop_test_mallory'), 0,
          'nothing of mallory''s ran in the superuser''s runs, steps or sicoop functions');
SELECT is((SELECT count(*)::int FROM sicoop.fato_movimentacao_cartao WHERE id_movimentacao_cartao = 'MOV-TRAP'), 1,
          'and the runs did their work');
\o /dev/null
DROP OPERATOR public.= (varchar, varchar);
DROP FUNCTION public.sicoop_test_evil_eq(varchar, varchar), public.age(date, date);
DROP TABLE public.sicoop_test_trap;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
\o

------------------------------------------------------------------------------------------
-- 2. The operator: a non-superuser that owns the warehouse, points it at the source, runs,
--    exports into the directory a superuser allowed, and reads the run log.
------------------------------------------------------------------------------------------
\o /dev/null
COPY (SELECT 1) TO PROGRAM 'mkdir -p sicoop_test_exports';
\o
SELECT current_setting('data_directory') || '/sicoop_test_exports' AS export_dir \gset
SELECT throws_ok($$SELECT sicoop.grant_operator(NULL)$$, '22004', NULL, 'grant_operator needs a role');
SELECT lives_ok($$SELECT sicoop.grant_operator('sicoop_test_operator')$$, 'a superuser names a non-superuser operator');
SELECT is((SELECT array_agg(DISTINCT relowner::regrole::text) FROM pg_class WHERE relnamespace = 'sicoop'::regnamespace
           AND relkind IN ('r', 'v', 'f', 'S')), ARRAY['sicoop_test_operator'],
          'the operator owns every table, view and sequence of the warehouse');
\o /dev/null
SELECT format('ALTER ROLE sicoop_test_operator SET sicoop.export_directory = %L', :'export_dir') \gexec
SELECT dblink_connect('op', :'connto' || 'sicoop_test_operator');
\o
SELECT throws_like(format($$SELECT * FROM dblink('op', 'SELECT sicoop.connect_source(''localhost'', %s, ''%s'', ''sicoop_test_source_reader'')') AS t(x text)$$, :pgport, :'srcdb'),
                   '%password is required%', 'the operator must connect to the source with a password');
SELECT lives_ok(format($$SELECT * FROM dblink('op', 'SELECT sicoop.connect_source(''localhost'', %s, ''%s'', ''sicoop_test_source_reader'', ''reader-pw'')') AS t(x text)$$, :pgport, :'srcdb'),
                'the operator points the warehouse at the source, with a password');
\o /dev/null
SELECT dblink_exec('op', 'SET sicoop.as_of = ''2025-08-15 14:00:00-03''');
\o
SELECT lives_ok($$SELECT dblink_exec('op', 'CALL sicoop.run_pipeline()')$$, 'the operator runs the pipeline');
SELECT is((SELECT x FROM dblink('op', $$SELECT string_agg(DISTINCT status, ',') FROM sicoop.run_log
                                        WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log)$$) AS t(x text)),
          'succeeded', 'and reads the run log: every step succeeded');
SELECT lives_ok($$SELECT * FROM dblink('op', 'SELECT rows_read FROM sicoop.load_fato()') AS t(n bigint)$$,
                'the operator runs a single step');
-- A restored or re-created extension makes its own tables anew, owned by a superuser: the
-- operator's run says what to do, and grant_operator again puts it right.
ALTER TABLE sicoop.stage_cartao OWNER TO CURRENT_USER;
SELECT throws_like($$SELECT * FROM dblink('op', 'SELECT rows_read FROM sicoop.load_raw()') AS t(n bigint)$$,
                   '%the extension''s own tables do not belong to the warehouse''s owner%',
                   'a scratch table the operator lost is detected before the run');
SELECT lives_ok($$SELECT sicoop.grant_operator('sicoop_test_operator')$$, 'grant_operator again gives it back');
SELECT is((SELECT n FROM dblink('op', 'SELECT sicoop.export_flat(''movimentacao_flat.csv'')') AS t(n bigint)), 13::bigint,
          'the operator exports the flat file into sicoop.export_directory');
SELECT is(split_part(pg_read_file(:'export_dir' || '/movimentacao_flat.csv'), E'\n', 1),
          'nome_associado;sobrenome_associado;idade_associado;vlr_transacao_movimento;des_transacao_movimento;data_movimentacao;numero_cartao;nome_impresso_cartao;data_criacao_cartao;tipo_conta;data_criacao_conta',
          'the file has the flat header');
SELECT throws_ok($$SELECT * FROM dblink('op', 'SELECT sicoop.export_flat(''/tmp/sicoop_escape.csv'')') AS t(n bigint)$$,
                 '42501', NULL, 'but not to any other path of the server');
SELECT throws_ok($$SELECT * FROM dblink('op', 'SELECT sicoop.export_flat(''../escape.csv'')') AS t(n bigint)$$,
                 '22023', NULL, 'nor out of the directory');
SELECT throws_ok($$SELECT * FROM dblink('op', 'ALTER ROLE sicoop_test_operator SUPERUSER') AS t(x text)$$, '42501', NULL,
                 'the operator is no superuser');
SELECT throws_ok('CALL sicoop.run_pipeline()', '42501', NULL,
                 'a superuser does not run the pipeline of a warehouse the operator owns (its triggers would run as superuser)');
-- Nor does any sicoop call of a superuser's read what the operator could have made run code:
-- the operator turns warehouse_info, which it owns, into a view (a _RETURN rule) whose query
-- takes an advisory lock as whoever reads it.
\o /dev/null
SELECT dblink_exec('op', $$DELETE FROM sicoop.warehouse_info;
  ALTER TABLE sicoop.warehouse_info DROP CONSTRAINT warehouse_info_pkey$$);
SELECT dblink_exec('op', 'VACUUM sicoop.warehouse_info');
\o
SELECT throws_like($$SELECT dblink_exec('op', $r$CREATE RULE "_RETURN" AS ON SELECT TO sicoop.warehouse_info DO INSTEAD
    SELECT true AS singleton, '1.5'::text AS layout_version, now() AS created_at, NULL::bigint AS full_run_owed_by,
           NULL::text AS rules_signature, NULL::jsonb AS canonical_labels
    WHERE pg_advisory_lock(424242) IS NOT NULL$r$)$$, '%the warehouse takes nothing sicoop does not define%',
  'the guard refuses the operator''s _RETURN rule at the statement (1.6)');
-- The checks behind the guard, as a warehouse from before 1.6 could hold it: planted with the
-- guard off.
\o /dev/null
ALTER EVENT TRIGGER sicoop_guard DISABLE;
SELECT dblink_exec('op', $$CREATE RULE "_RETURN" AS ON SELECT TO sicoop.warehouse_info DO INSTEAD
    SELECT true AS singleton, '1.12'::text AS layout_version, now() AS created_at, NULL::bigint AS full_run_owed_by,
           NULL::text AS rules_signature, NULL::jsonb AS canonical_labels
    WHERE pg_advisory_lock(424242) IS NOT NULL$$);
ALTER EVENT TRIGGER sicoop_guard ENABLE;
\o
SELECT is((SELECT relkind::text FROM pg_class WHERE oid = 'sicoop.warehouse_info'::regclass), 'v',
          'the operator turned warehouse_info into a view');
SELECT throws_like($$SELECT sicoop.grant_reader('sicoop_test_reader')$$, '%warehouse_info (not a plain table)%',
                   'a superuser''s grant_reader refuses such a warehouse, without reading it');
SELECT throws_like($$SELECT sicoop.revoke_operator('sicoop_test_operator')$$, '%warehouse_info (not a plain table)%',
                   'so does revoke_operator, before the warehouse would come back to a superuser');
SELECT is((SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND objid = 424242 AND pid = pg_backend_pid()), 0,
          'the view''s query never ran as the superuser');
SELECT throws_ok($$SELECT sicoop.export_flat('/tmp/sicoop_superuser.csv')$$, '42501', NULL,
                 'a superuser does not export a flat view the operator owns either');
-- (put back below; a default planted on a table would be refused likewise by revoke_operator)
\o /dev/null
DROP VIEW sicoop.warehouse_info;
CREATE TABLE sicoop.warehouse_info (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    layout_version  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    full_run_owed_by bigint,
    rules_signature text,
    canonical_labels jsonb
);
INSERT INTO sicoop.warehouse_info (layout_version, canonical_labels) VALUES ('1.12', sicoop._canonical_labels());
ALTER TABLE sicoop.warehouse_info OWNER TO sicoop_test_operator;
\o
-- A column of a type the operator defined (with a cast that would run as whoever reads it):
-- refused before the superuser's read.
SELECT throws_like($$SELECT dblink_exec('op', $t$CREATE TYPE pg_temp.sicoop_test_layout AS ENUM ('1.12');
  ALTER TABLE sicoop.warehouse_info ALTER COLUMN layout_version TYPE pg_temp.sicoop_test_layout
    USING layout_version::pg_temp.sicoop_test_layout$t$)$$, '%the warehouse takes nothing sicoop does not define%',
  'the guard refuses a column of the operator''s type at the statement (1.6)');
\o /dev/null
ALTER EVENT TRIGGER sicoop_guard DISABLE;
SELECT dblink_exec('op', $$CREATE TYPE pg_temp.sicoop_test_layout AS ENUM ('1.12');
  ALTER TABLE sicoop.warehouse_info ALTER COLUMN layout_version TYPE pg_temp.sicoop_test_layout
    USING layout_version::pg_temp.sicoop_test_layout$$);
ALTER EVENT TRIGGER sicoop_guard ENABLE;
\o
SELECT throws_like($$SELECT sicoop.grant_reader('sicoop_test_reader')$$, '%warehouse_info (has a column of a type outside pg_catalog)%',
                   'a superuser''s grant_reader refuses a warehouse_info column of a type the operator defined, without reading it');
\o /dev/null
SELECT dblink_exec('op', 'ALTER TABLE sicoop.warehouse_info ALTER COLUMN layout_version TYPE text');
\o
-- A member of the operator role (with rights of its own) does not run the operator's
-- pipeline as itself; SET ROLE to the operator, it does.
SELECT throws_like(format($$SELECT dblink_exec('host=localhost port=%s dbname=%s user=sicoop_test_member', 'CALL sicoop.run_pipeline()')$$,
                          :'pgport', current_database()),
                   '%only the warehouse''s owner (sicoop_test_operator) runs the pipeline, not sicoop_test_member%',
                   'a member of the operator role does not run the pipeline as itself');
SELECT lives_ok(format($$SELECT * FROM dblink('host=localhost port=%s dbname=%s user=sicoop_test_member',
                                            'SET ROLE sicoop_test_operator; SET sicoop.as_of = ''2025-08-15 14:10:00-03''; SELECT rows_read FROM sicoop.load_raw()') AS t(n bigint)$$,
                       :'pgport', current_database()),
                'SET ROLE to the operator, it does');

------------------------------------------------------------------------------------------
-- 3. A reader sees the star schema and the flat view, nothing else; a role with only LOGIN
--    sees nothing and reaches no source.
------------------------------------------------------------------------------------------
SELECT lives_ok($$SELECT sicoop.grant_reader('sicoop_test_reader')$$, 'a superuser names a reader');
\o /dev/null
SELECT dblink_connect('rd', :'connto' || 'sicoop_test_reader');
SELECT dblink_connect('nb', :'connto' || 'sicoop_test_nobody');
\o
SELECT is((SELECT n FROM dblink('rd', 'SELECT count(*) FROM sicoop.vw_movimentacao_flat') AS t(n bigint)), 13::bigint,
          'the reader reads the flat view');
SELECT is((SELECT n FROM dblink('rd', $$SELECT count(*) FROM sicoop.fato_movimentacao_cartao f JOIN sicoop.dim_associado a USING (sk_associado)
                                       JOIN sicoop.dim_cartao USING (sk_cartao) JOIN sicoop.dim_conta USING (sk_conta)
                                       JOIN sicoop.dim_data USING (sk_data)$$) AS t(n bigint)), 13::bigint,
          'and the fact with its dimensions');
SELECT throws_ok(format($$SELECT * FROM dblink('rd', 'SELECT count(*) FROM sicoop.%I') AS t(n bigint)$$, t), '42501', NULL,
                 format('the reader cannot read %s', t))
FROM unnest(ARRAY['raw_cartao', 'raw_associado', 'stage_cartao', 'trusted_associado', 'reject', 'run_log', 'src_cartao',
                  'deferred_index']) AS t;
SELECT throws_ok($$SELECT dblink_exec('rd', 'CALL sicoop.run_pipeline()')$$, '42501', NULL, 'the reader cannot run the pipeline');
SELECT throws_ok($$SELECT * FROM dblink('rd', 'SELECT sicoop._check_source(''localhost'', 5432, ''postgres'', ''postgres'', ''x'', ''public'')') AS t(x text)$$,
                 '42501', NULL, 'nor probe the network or passwords through the source check');
SELECT throws_ok($$SELECT * FROM dblink('nb', 'SELECT sicoop._check_source(''localhost'', 5432, ''postgres'', ''postgres'', ''x'', ''public'')') AS t(x text)$$,
                 '42501', NULL, 'a role with only LOGIN cannot either');
SELECT throws_ok($$SELECT * FROM dblink('nb', 'SELECT count(*) FROM sicoop.vw_movimentacao_flat') AS t(n bigint)$$,
                 '42501', NULL, 'nor read anything of the warehouse');

------------------------------------------------------------------------------------------
-- 4. Secrets and card numbers in errors and the server log.
------------------------------------------------------------------------------------------
SELECT (pg_stat_file('server.log')).size AS log_start \gset
SELECT pg_temp.error_of(format($$SELECT * FROM dblink('op', 'SELECT sicoop.connect_source(''localhost'', %s, ''%s'', ''sicoop_test_source_reader'', ''Wr0ng-S3cret''''*pw'')') AS t(x text)$$,
                               :pgport, :'srcdb')) AS wrong_password \gset
SELECT ok(:'wrong_password' LIKE '%cannot connect to the source%', 'a wrong source password fails');
SELECT pg_sleep(0.3) \g /dev/null
SELECT ok(strpos(pg_temp.log_since(:log_start), 'cannot connect to the source') > 0
          AND strpos(pg_temp.log_since(:log_start), 'S3cret') = 0,
          'the server log has the error, but neither the password nor the statement that carried it');
-- An error that holds the password: connect_source's CREATE USER MAPPING (whose text carries
-- it) waits for a lock another session holds, and times out. The error must show it masked.
\o /dev/null
DROP USER MAPPING FOR sicoop_test_operator SERVER sicoop_source;
SELECT dblink_connect('locker', :'connto' || current_user);
SELECT dblink_exec('locker', 'BEGIN');
SELECT dblink_exec('locker', 'LOCK TABLE pg_catalog.pg_user_mapping IN EXCLUSIVE MODE');
SELECT dblink_exec('op', 'SET lock_timeout = ''1s''');
\o
SELECT (pg_stat_file('server.log')).size AS log_start3 \gset
SELECT pg_temp.error_of(format($$SELECT * FROM dblink('op', 'SELECT sicoop.connect_source(''localhost'', %s, ''%s'', ''sicoop_test_source_reader'', ''reader-pw'')') AS t(x text)$$,
                               :pgport, :'srcdb')) AS mapping_error \gset
\o /dev/null
SELECT dblink_exec('locker', 'ROLLBACK');
SELECT dblink_disconnect('locker');
SELECT dblink_exec('op', 'RESET lock_timeout');
\o
-- (What the operator's session raised: the text before dblink's own context, which quotes
-- this test's statement.)
SELECT split_part(:'mapping_error', 'while executing query on dblink', 1) AS mapping_error \gset
SELECT ok(:'mapping_error' LIKE '%lock timeout%' AND :'mapping_error' LIKE '%CREATE USER MAPPING%password ''********''%'
          AND strpos(:'mapping_error', 'reader-pw') = 0,
          'an error whose context holds the password shows it as ********');
SELECT pg_sleep(0.3) \g /dev/null
SELECT ok(strpos(pg_temp.log_since(:log_start3), 'lock timeout') > 0 AND strpos(pg_temp.log_since(:log_start3), 'reader-pw') = 0,
          'and so does the server log');
SELECT lives_ok(format($$SELECT * FROM dblink('op', 'SELECT sicoop.connect_source(''localhost'', %s, ''%s'', ''sicoop_test_source_reader'', ''reader-pw'')') AS t(x text)$$, :pgport, :'srcdb'),
                'once the lock is gone, the operator connects again');

-- A source card with a NULL id (a source without its key) is rejected: its number must not
-- show in the reject, the run log or the server log.
\o /dev/null
SELECT dblink_exec(:'srcconn', $$ALTER TABLE cartao DROP CONSTRAINT cartao_pkey CASCADE;
  ALTER TABLE cartao ALTER COLUMN id_cartao DROP NOT NULL;
  INSERT INTO cartao VALUES (NULL, 'CONTA-101', '4000123412341234', 'sem id 4000-1234-1234-1234', 'Visa', 'Crédito', '2024-01-01')$$);
SELECT dblink_exec('op', 'SET sicoop.as_of = ''2025-08-15 15:00:00-03''');
\o
SELECT (pg_stat_file('server.log')).size AS log_start2 \gset
SELECT lives_ok($$SELECT dblink_exec('op', 'CALL sicoop.run_pipeline()')$$,
                'a run with a card row without its key succeeds: the row is rejected');
SELECT results_eq($$SELECT rule_name, record->>'numero_cartao', record->>'nome_impresso_cartao' FROM sicoop.reject WHERE table_name = 'cartao'$$,
                  $$VALUES ('cartao_id_not_null', '************1234', 'sem id ****-****-****-1234')$$,
                  'sicoop.reject keeps it with its number masked to the last four digits, in every column');
SELECT pg_sleep(0.3) \g /dev/null
SELECT ok(strpos(pg_temp.log_since(:log_start2), '4000123412341234') = 0
          AND NOT EXISTS (SELECT 1 FROM sicoop.run_log l WHERE l::text ~ '4000-?1234')
          AND NOT EXISTS (SELECT 1 FROM sicoop.dq_result d WHERE d::text ~ '4000-?1234'),
          'nor does the run log, the data-quality results or the server log show it');
\o /dev/null
SELECT dblink_exec(:'srcconn', $$DELETE FROM cartao WHERE id_cartao IS NULL; ALTER TABLE cartao ADD PRIMARY KEY (id_cartao)$$);
SELECT dblink_exec('op', 'SET sicoop.as_of = ''2025-08-15 15:30:00-03''');
SELECT dblink_exec('op', 'CALL sicoop.run_pipeline()');
\o
SELECT is((SELECT count(*)::int FROM sicoop.raw_cartao r JOIN sicoop.src_cartao s USING (id_cartao)
           WHERE r.numero_cartao = s.numero_cartao AND length(s.numero_cartao) > 4), 0,
          'raw_cartao holds no full number after the failed and the fixed runs');

------------------------------------------------------------------------------------------
-- 5. The operator schedules the pipeline with pg_cron (in the database pg_cron lives in).
------------------------------------------------------------------------------------------
SELECT format('host=localhost port=%s dbname=sicooperativedw user=', :'pgport') AS cronto \gset
\o /dev/null
-- (pg_cron lives in another database here: scheduling into this one needs schedule_in_database,
-- which pg_cron keeps for superusers unless granted. With pg_cron in the warehouse's database,
-- grant_operator's USAGE on schema cron is all cron.schedule() needs.)
SELECT dblink_exec(:'cronto' || current_user, $$GRANT USAGE ON SCHEMA cron TO sicoop_test_operator;
  GRANT EXECUTE ON FUNCTION cron.schedule_in_database(text, text, text, text, text, boolean) TO sicoop_test_operator$$);
SELECT dblink_connect('opcron', :'cronto' || 'sicoop_test_operator');
\o
SELECT job AS jobid FROM dblink('opcron', format(
  $$SELECT cron.schedule_in_database('sicoop_test_operator_job', '* * * * *', 'CALL sicoop.run_pipeline()', %L)$$,
  current_database())) AS t(job bigint) \gset
SELECT is((SELECT u FROM dblink(:'cronto' || current_user, format('SELECT username FROM cron.job WHERE jobid = %s', :jobid)) AS t(u text)),
          'sicoop_test_operator', 'the operator schedules the pipeline; the job runs as the operator');
\ir helpers/cron.sql
SELECT is(pg_temp.wait_for_job('opcron', :jobid), 'succeeded: CALL', 'pg_cron ran it as the operator, and it succeeded');
SELECT ok(done, 'the operator unschedules it') FROM dblink('opcron', format('SELECT cron.unschedule(%s)', :jobid)) AS t(done boolean);

------------------------------------------------------------------------------------------
-- 6. Revoking.
------------------------------------------------------------------------------------------
\o /dev/null
SELECT dblink_disconnect('op');
SELECT dblink_disconnect('opcron');
SELECT dblink_disconnect('rd');
\o
SELECT lives_ok($$SELECT sicoop.revoke_reader('sicoop_test_reader')$$, 'revoke_reader');
SELECT throws_ok($$SELECT * FROM dblink('dbname=' || current_database() || ' port=' || current_setting('port') || ' host=localhost user=sicoop_test_reader', 'SELECT count(*) FROM sicoop.fato_movimentacao_cartao') AS t(n bigint)$$,
                 '42501', NULL, 'the former reader reads nothing');
-- What the operator adds to its tables must not come back with them to a superuser: a
-- planted column default (it would run in the superuser's next run) and a planted index
-- definition (sicoop would execute it).
\o /dev/null
SELECT dblink_connect('op', :'connto' || 'sicoop_test_operator');
\o
SELECT throws_like($$SELECT dblink_exec('op', 'ALTER TABLE sicoop.run_log ALTER COLUMN backend_pid SET DEFAULT (pg_backend_pid() + 0)')$$,
                   '%the warehouse takes nothing sicoop does not define%', 'the guard refuses a planted column default (1.6)');
\o /dev/null
ALTER EVENT TRIGGER sicoop_guard DISABLE;
SELECT dblink_exec('op', 'ALTER TABLE sicoop.run_log ALTER COLUMN backend_pid SET DEFAULT (pg_backend_pid() + 0)');
ALTER EVENT TRIGGER sicoop_guard ENABLE;
SELECT dblink_exec('op', $$INSERT INTO sicoop.deferred_index VALUES ('sicoop.trusted_conta', 'zz', 'SELECT 1')$$);
\o
SELECT throws_like($$SELECT sicoop.revoke_operator('sicoop_test_operator')$$,
                   '%not as sicoop defines them: column run_log.backend_pid%DROP DEFAULT%',
                   'revoke_operator refuses a warehouse whose definition the operator changed (a column default)');
\o /dev/null
SELECT dblink_exec('op', 'ALTER TABLE sicoop.run_log ALTER COLUMN backend_pid SET DEFAULT pg_backend_pid()');
SELECT dblink_disconnect('op');
\o
SELECT lives_ok($$SELECT sicoop.revoke_operator('sicoop_test_operator')$$, 'revoke_operator, once it is put back');
SELECT is((SELECT count(*)::int FROM sicoop.deferred_index), 0, 'and no index definition the operator left stays behind');
SELECT is((SELECT relowner::regrole::text FROM pg_class WHERE oid = 'sicoop.fato_movimentacao_cartao'::regclass),
          current_user::text, 'the warehouse is back with the extension''s owner');
SELECT is((SELECT count(*)::int FROM pg_user_mappings WHERE usename = 'sicoop_test_operator'), 0,
          'and the former operator''s user mapping (its source password) is gone');

\o /dev/null
SELECT dblink_disconnect('nb');
SELECT dblink_exec(:'cronto' || current_user, $$REVOKE USAGE ON SCHEMA cron FROM sicoop_test_operator;
  REVOKE EXECUTE ON FUNCTION cron.schedule_in_database(text, text, text, text, text, boolean) FROM sicoop_test_operator$$);
SELECT dblink_exec(:'srcconn', 'REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM sicoop_test_source_reader');
SET client_min_messages = warning;
SELECT pg_temp.drop_test_roles(ARRAY['sicoop_test_member', 'sicoop_test_operator', 'sicoop_test_reader', 'sicoop_test_nobody', 'sicoop_test_mallory', 'sicoop_test_source_reader']);
\o
SELECT * FROM finish();
