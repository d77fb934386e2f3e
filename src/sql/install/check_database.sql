-- The trusted layer upper-cases with accents kept: refuse a database that cannot.
DO $check$
BEGIN
  IF current_setting('server_encoding') <> 'UTF8' THEN
    RAISE EXCEPTION 'sicoop_etl needs a UTF-8 database, this one is %', current_setting('server_encoding')
      USING HINT = 'CREATE DATABASE ... ENCODING ''UTF8'' with an ICU or libc locale such as pt-BR.';
  END IF;
  IF upper('joão poupança') <> 'JOÃO POUPANÇA' THEN
    RAISE EXCEPTION 'sicoop_etl needs a database collation that upper-cases accented letters; upper(''joão'') gives %', upper('joão')
      USING HINT = 'Create the database with LOCALE_PROVIDER icu ICU_LOCALE ''pt-BR'', or a libc locale such as pt_BR.UTF-8 or C.UTF-8.';
  END IF;
END
$check$;
