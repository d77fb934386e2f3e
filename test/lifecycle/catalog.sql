-- What pg_dump --schema-only does not show of a sicoop_etl install (test/lifecycle/20_upgrade.sh):
-- the extension's members with their definitions and privileges, the column order of every
-- relation (dropped columns included), and the initial privileges recorded for the schema's
-- objects. A fresh install and an upgraded one must print the same lines.
SELECT 'member ' || pg_describe_object(classid, objid, objsubid)
FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'sicoop_etl')
ORDER BY 1;

SELECT format(E'function %s owner %s acl %s\n%s', p.oid::regprocedure, pg_get_userbyid(p.proowner),
              coalesce(p.proacl::text, 'default'), pg_get_functiondef(p.oid))
FROM pg_proc p WHERE p.pronamespace = 'sicoop'::regnamespace
ORDER BY p.oid::regprocedure::text;

SELECT format('attribute %s.%s %s %s', c.relname, a.attnum,
              CASE WHEN a.attisdropped THEN '(dropped)' ELSE a.attname END,
              CASE WHEN a.attisdropped THEN '' ELSE format_type(a.atttypid, a.atttypmod) END)
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
WHERE c.relnamespace = 'sicoop'::regnamespace
ORDER BY c.relname, a.attnum;

SELECT format('init privileges %s %s %s', pg_describe_object(i.classoid, i.objoid, i.objsubid), i.privtype, i.initprivs)
FROM pg_init_privs i
WHERE (i.classoid = 'pg_class'::regclass AND i.objoid IN (SELECT oid FROM pg_class WHERE relnamespace = 'sicoop'::regnamespace))
   OR (i.classoid = 'pg_proc'::regclass AND i.objoid IN (SELECT oid FROM pg_proc WHERE pronamespace = 'sicoop'::regnamespace))
   OR (i.classoid = 'pg_namespace'::regclass AND i.objoid = 'sicoop'::regnamespace)
ORDER BY 1;

SELECT format('event trigger %s on %s calls %s enabled %s tags %s', e.evtname, e.evtevent, e.evtfoid::regprocedure, e.evtenabled,
              coalesce(e.evttags::text, 'all'))
FROM pg_event_trigger e ORDER BY 1;
