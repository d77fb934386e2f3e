-- No input crashes the backend: every SQL-callable function of sicoop, and every sicoop.*
-- setting, fed with extreme values (NULL, empty, ±infinity, huge, out of range, wrong
-- literals, very long) by a non-superuser (the operator, who may call the most). A crash
-- would end this session (the postmaster restarts every backend), and the server log would say
-- "terminated by signal": it must not.
\ir helpers/reset.sql
SELECT plan(13);
SELECT (pg_stat_file('server.log')).size AS log_start \gset

\o /dev/null
SET client_min_messages = warning;
\ir helpers/test_roles.sql
SELECT pg_temp.drop_test_roles(ARRAY['sicoop_test_fuzzer', 'sicoop_test_source_reader']);
CREATE ROLE sicoop_test_fuzzer LOGIN;
CREATE ROLE sicoop_test_source_reader LOGIN PASSWORD 'reader-pw';
SELECT dblink_exec(:'srcconn', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO sicoop_test_source_reader');
SELECT sicoop.grant_operator('sicoop_test_fuzzer');
RESET client_min_messages;
SELECT dblink_connect('fz', format('host=localhost port=%s dbname=%s user=sicoop_test_fuzzer', :'pgport', current_database()));
SELECT * FROM dblink('fz', format($$SELECT sicoop.connect_source('localhost', %s, '%s', 'sicoop_test_source_reader', 'reader-pw')$$,
                                  :'pgport', :'srcdb')) AS t(x text);
SELECT dblink_exec('fz', 'SET sicoop.as_of = ''2025-08-15 10:00:00-03''');
\o
SELECT lives_ok($$SELECT dblink_exec('fz', 'CALL sicoop.run_pipeline()')$$, 'the operator''s first run succeeds');

-- The review's crash: after a run, sicoop.as_of = '-infinity' and any step. Now a clear refusal.
SELECT throws_ok($$SELECT * FROM dblink('fz', 'SET sicoop.as_of = ''-infinity''; SELECT rows_read FROM sicoop.load_raw()') AS t(n bigint)$$,
                 '22023', NULL, 'sicoop.as_of = -infinity is refused with 22023 (1.0 crashed the server here)');
SELECT throws_ok($$SELECT * FROM dblink('fz', 'SET sicoop.as_of = ''infinity''; SELECT rows_read FROM sicoop.load_raw()') AS t(n bigint)$$,
                 '22023', NULL, 'infinity is refused');
SELECT throws_like($$SELECT * FROM dblink('fz', 'SET sicoop.as_of = ''1950-01-01''; SELECT rows_read FROM sicoop.load_raw()') AS t(n bigint)$$,
                   '%earlier than the reference time of the latest successful run%', 'a time before the latest run is refused');
SELECT throws_like($$SELECT * FROM dblink('fz', 'SET sicoop.as_of = ''2999-01-01''; SELECT rows_read FROM sicoop.load_raw()') AS t(n bigint)$$,
                   '%in the future%', 'a time in the future (a typo) is refused, and poisons nothing');
SELECT throws_like($$SELECT * FROM dblink('fz', 'SET sicoop.as_of = ''''; SET sicoop.lookback = ''-3 days''; SELECT rows_read FROM sicoop.load_raw()') AS t(n bigint)$$,
                   '%sicoop.lookback must be between 0 and 10 years%', 'a negative lookback is refused');
SELECT throws_like($$SELECT * FROM dblink('fz', 'RESET sicoop.lookback; SET sicoop.timezone = ''Mars/Olympus''; SELECT rows_read FROM sicoop.load_raw()') AS t(n bigint)$$,
                   '%sicoop.timezone is not a time zone%', 'an unknown time zone is refused');
\o /dev/null
SELECT dblink_exec('fz', 'RESET sicoop.timezone');
SELECT dblink_exec('fz', 'SET sicoop.as_of = ''2025-08-15 10:00:00-03''');
\o

-- Every function of schema sicoop, each argument in turn through its type's extreme values,
-- the others at ordinary values (a source address that refuses at once: no network waits).
-- Errors are expected and caught; what matters is that the session survives every call.
SELECT dblink_exec('fz', $fuzz$
CREATE FUNCTION pg_temp.fuzz_functions() RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
  fn record;
  args text[];
  sql text;
  calls int := 0;
  failed int := 0;
  i int;
  v text;
BEGIN
  FOR fn IN SELECT p.oid, p.proname, p.prokind, coalesce(p.proargnames, '{}') AS names,
                   ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t) AS types
            FROM pg_proc p WHERE p.pronamespace = 'sicoop'::regnamespace ORDER BY p.proname LOOP
    FOR i IN 0 .. coalesce(array_length(fn.types, 1), 0) LOOP
      FOREACH v IN ARRAY CASE WHEN i = 0 THEN ARRAY['baseline'] ELSE pg_temp.extremes(fn.types[i], fn.names[i]) END LOOP
        args := ARRAY(SELECT CASE WHEN j = i THEN v ELSE pg_temp.baseline(fn.types[j], fn.names[j]) END || '::' || fn.types[j]
                      FROM generate_subscripts(fn.types, 1) j ORDER BY j);
        sql := format(CASE fn.prokind WHEN 'p' THEN 'CALL sicoop.%I(%s)' ELSE 'SELECT sicoop.%I(%s)' END,
                      fn.proname, array_to_string(args, ', '));
        calls := calls + 1;
        BEGIN
          EXECUTE sql;
        EXCEPTION WHEN others THEN
          failed := failed + 1;
        END;
      END LOOP;
    END LOOP;
  END LOOP;
  RETURN format('%s %s', calls, failed);
END
$f$;
CREATE FUNCTION pg_temp.baseline(type text, name text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
  SELECT CASE
    WHEN name = 'host' THEN '''127.0.0.1'''
    WHEN name = 'port' THEN '1'
    WHEN name IN ('step') THEN '''load_dims'''
    WHEN name IN ('path') THEN '''fuzz.csv'''
    WHEN type = 'text' THEN '''Ana Silva'''
    WHEN type = 'integer' THEN '1'
    WHEN type = 'bigint' THEN '0'
    WHEN type = 'boolean' THEN 'false'
    WHEN type = 'date' THEN '''2000-01-01'''
    WHEN type LIKE 'timestamp%' THEN '''2025-08-15'''
    WHEN type = 'regclass' THEN '''sicoop.dim_data'''
    WHEN type = 'regrole' THEN '''sicoop_test_fuzzer'''
    WHEN type = 'bytea' THEN 'decode(repeat(''ab'', 32), ''hex'')'
    WHEN type = 'text[]' THEN '''{dim_data}'''
    ELSE 'NULL' END
$f$;
CREATE FUNCTION pg_temp.extremes(type text, name text) RETURNS text[] LANGUAGE sql IMMUTABLE AS $f$
  SELECT CASE
    -- host names would be looked up in the DNS: socket paths instead, which fail at once
    WHEN name = 'host' THEN ARRAY['NULL', '''''', '''/nonexistent''', 'repeat(''/x'', 5000)']
    WHEN type = 'text' THEN ARRAY['NULL', '''''', 'repeat(''x'', 100000)', 'E''\\x01\\x1b[31m\\x7f''', '''-infinity''',
                                  '''99999999999999999999999999''', '''%s%n%x%p''', $q$'''; SELECT 1; --'$q$,
                                  '''sicoop.raw_cartao''', '''load_raw''', '''4111111111111111''', '''/tmp/x.csv''', '''../x''']
    WHEN type = 'integer' THEN ARRAY['NULL', '0', '-1', '2147483647', '-2147483648']
    WHEN type = 'bigint' THEN ARRAY['NULL', '0', '-1', '9223372036854775807', '-9223372036854775808']
    WHEN type = 'boolean' THEN ARRAY['NULL', 'true']
    WHEN type = 'date' THEN ARRAY['NULL', '''infinity''', '''-infinity''', '''4713-01-01 BC''', '''5874897-12-31''']
    WHEN type LIKE 'timestamp%' THEN ARRAY['NULL', '''infinity''', '''-infinity''', '''294276-12-31 23:59:59''', '''4713-01-01 BC''']
    WHEN type = 'regclass' THEN ARRAY['NULL', '''pg_class''', '''sicoop.raw_cartao''', '''pg_authid''', '0']
    WHEN type = 'regrole' THEN ARRAY['NULL', '''postgres''', '''sicoop_test_fuzzer''', '0']
    WHEN type = 'bytea' THEN ARRAY['NULL', '''''', '''\x00''', 'decode(repeat(''ff'', 100000), ''hex'')']
    WHEN type = 'text[]' THEN ARRAY['NULL', '''{}''', '''{NULL}''', 'ARRAY[repeat(''x'', 10000)]', '''{raw_cartao,"a b"}''']
    ELSE ARRAY['NULL'] END
$f$;
$fuzz$) \g /dev/null
SELECT split_part(r, ' ', 1)::int AS calls, split_part(r, ' ', 2)::int AS call_errors
FROM dblink('fz', 'SELECT pg_temp.fuzz_functions()') AS t(r text) \gset
SELECT ok(:calls > 400, format('%s calls of every sicoop function with extreme arguments (%s raised an error, none crashed)',
                               :calls, :call_errors));

-- Every sicoop.* setting through extreme values, each followed by a step, a run, the
-- reference time and an export.
SELECT dblink_exec('fz', $fuzz$
CREATE FUNCTION pg_temp.fuzz_settings() RETURNS int LANGUAGE plpgsql AS $f$
DECLARE
  setting text;
  v text;
  action text;
  tries int := 0;
BEGIN
  FOR setting, v IN
    SELECT s, x FROM (VALUES ('sicoop.as_of'), ('sicoop.timezone'), ('sicoop.lookback'), ('sicoop.export_directory')) g(s),
         unnest(ARRAY['-infinity', 'infinity', 'epoch', '1950-01-01', '2999-01-01', 'garbage', repeat('9', 10000),
                      '294276-12-31', '4713-01-01 BC', 'UTC+999999', '-3 days', '1000000 years', '178000000 years',
                      '/', '/tmp', repeat('/x', 5000), E'\x01', '']) x
  LOOP
    BEGIN
      PERFORM set_config(setting, v, false);
    EXCEPTION WHEN others THEN
      NULL;
    END;
    FOREACH action IN ARRAY ARRAY['SELECT sicoop.load_raw()', 'CALL sicoop.run_pipeline()', 'SELECT sicoop.reference_time()',
                                  'SELECT sicoop.export_flat(''fuzz.csv'')', 'SELECT sicoop.load_fato()'] LOOP
      tries := tries + 1;
      BEGIN
        EXECUTE action;
      EXCEPTION WHEN others THEN
        NULL;
      END;
    END LOOP;
    PERFORM set_config(setting, CASE setting WHEN 'sicoop.timezone' THEN 'America/Sao_Paulo' WHEN 'sicoop.lookback' THEN '3 days'
                                            ELSE '' END, false)
    WHERE setting <> 'sicoop.export_directory';
  END LOOP;
  RETURN tries;
END
$f$;
$fuzz$) \g /dev/null
SELECT n AS setting_tries FROM dblink('fz', 'SELECT pg_temp.fuzz_settings()') AS t(n int) \gset
SELECT ok(:setting_tries >= 300, format('%s steps, runs and exports under extreme settings, none crashed', :setting_tries));

-- Top-level runs (non-atomic: their commits, pinned settings and session lock) under
-- extreme settings, and the export under extreme export directories (which only a superuser
-- sets: for the operator's role, then a new session).
CREATE FUNCTION pg_temp.fuzz_top_level() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  setting text;
  v text;
  tries int := 0;
BEGIN
  FOR setting, v IN
    SELECT g, x FROM (VALUES ('sicoop.as_of'), ('sicoop.timezone'), ('sicoop.lookback')) s(g),
         unnest(ARRAY['-infinity', 'infinity', '2999-01-01', 'garbage', '-3 days', '1000000 years', repeat('9', 10000), '']) x
  LOOP
    BEGIN
      PERFORM dblink_exec('fz', format('SET %s = %L', setting, v));
    EXCEPTION WHEN others THEN
      NULL;
    END;
    BEGIN
      PERFORM dblink_exec('fz', 'CALL sicoop.run_pipeline()');
    EXCEPTION WHEN others THEN
      NULL;
    END;
    tries := tries + 1;
    PERFORM dblink_exec('fz', format('RESET %s', setting));
  END LOOP;
  FOREACH v IN ARRAY ARRAY['/', '/nonexistent', '/tmp', 'relative', repeat('/x', 3000), E'/tmp/\x01', ''] LOOP
    EXECUTE format('ALTER ROLE sicoop_test_fuzzer SET sicoop.export_directory = %L', v);
    PERFORM dblink_connect('fz2', format('host=localhost port=%s dbname=%s user=sicoop_test_fuzzer',
                                         current_setting('port'), current_database()));
    BEGIN
      PERFORM * FROM dblink('fz2', 'SELECT sicoop.export_flat(''fuzz.csv'')') AS t(n bigint);
    EXCEPTION WHEN others THEN
      NULL;
    END;
    PERFORM dblink_disconnect('fz2');
    tries := tries + 1;
  END LOOP;
  ALTER ROLE sicoop_test_fuzzer RESET sicoop.export_directory;
  RETURN tries;
END
$$;
SELECT is(pg_temp.fuzz_top_level(), 31, 'top-level runs under extreme settings, exports under extreme directories: all returned');

-- What the server log says of crashes since this test began.
SELECT ok(strpos(log, 'terminated by signal') = 0 AND strpos(log, 'terminating any other active server processes') = 0,
          'no backend crashed: the server log has no "terminated by signal" since this test began')
FROM (SELECT pg_read_file('server.log', :log_start, (pg_stat_file('server.log')).size - :log_start) AS log) l;
\o /dev/null
SELECT dblink_exec('fz', 'RESET sicoop.as_of');
\o
SELECT lives_ok($$SELECT dblink_exec('fz', 'CALL sicoop.run_pipeline()')$$, 'and the pipeline still runs afterwards');
SELECT is((SELECT count(*)::int FROM sicoop.fato_movimentacao_cartao), 12, 'with the sample''s twelve movements loaded');

\o /dev/null
SELECT dblink_disconnect('fz');
SELECT sicoop.revoke_operator('sicoop_test_fuzzer');
SELECT dblink_exec(:'srcconn', 'REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM sicoop_test_source_reader');
SET client_min_messages = warning;
SELECT pg_temp.drop_test_roles(ARRAY['sicoop_test_fuzzer', 'sicoop_test_source_reader']);
\o
SELECT * FROM finish();
