-- The fingerprint of a warehouse (test/lifecycle/lib.sh): one line per relation of schema
-- sicoop (rows and an md5 of them in a fixed order), per sequence (its position), and the
-- source's connection objects. Two warehouses with the same lines hold the same data. The
-- extension's own tables are not data and are left out: the steps' scratch tables (stage_*,
-- deferred_index, stream_key: empty between runs; source_day_total: the latest load's source totals) and the record of what was handed over to an
-- operator. With -v except='{table.column,...}' those columns are left out of the checksums
-- ('*.column': of every table; 'table.*': all of them): what two warehouses loaded side by side
-- may not share, such as wall-clock times (test/lifecycle/70_citus.sh).
\if :{?except}
\else
\set except '{}'
\endif
CREATE FUNCTION pg_temp.fingerprint(left_out text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  r record;
  line text;
BEGIN
  FOR r IN SELECT c.oid::regclass AS rel, c.relname, c.relkind
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'sicoop' AND c.relkind IN ('r', 'S', 'v', 'f')
             AND c.relname NOT LIKE 'stage\_%' AND c.relname NOT IN ('deferred_index', 'operator_handover', 'source_day_total', 'stream_key')
           ORDER BY c.relname LOOP
    IF r.relkind = 'S' THEN
      EXECUTE format('SELECT format(''sequence %%s last_value=%%s is_called=%%s'', %L, last_value, is_called) FROM %s',
                     r.relname, r.rel) INTO line;
    ELSIF r.relkind = 'f' THEN
      SELECT format('foreign table %s %s', r.relname, ARRAY(SELECT o FROM unnest(ftoptions) o ORDER BY o)) INTO line FROM pg_foreign_table WHERE ftrelid = r.rel;
    ELSE
      EXECUTE format('SELECT format(''%%s rows=%%s md5=%%s'', %L, count(*), md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), ''''))) FROM (SELECT %s FROM %s) t',
                     r.relname, (SELECT coalesce(string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum), '') FROM pg_attribute a
                                 WHERE a.attrelid = r.rel AND a.attnum > 0 AND NOT a.attisdropped
                                   AND r.relname || '.' || a.attname <> ALL (left_out) AND '*.' || a.attname <> ALL (left_out)
                                   AND r.relname || '.*' <> ALL (left_out)), r.rel) INTO line;
    END IF;
    RETURN NEXT line;
  END LOOP;
  RETURN NEXT (SELECT format('server %s %s', srvname, ARRAY(SELECT o FROM unnest(srvoptions) o ORDER BY o))
               FROM pg_foreign_server WHERE srvname = 'sicoop_source');
  RETURN NEXT (SELECT format('user mapping %s %s', usename,
                             ARRAY(SELECT o FROM unnest(umoptions) o WHERE o NOT LIKE 'password=%' ORDER BY o))
               FROM pg_user_mappings WHERE srvname = 'sicoop_source');
END
$$;
SELECT * FROM pg_temp.fingerprint(:'except');
