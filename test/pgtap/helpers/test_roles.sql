-- pg_temp.drop_test_roles(roles): drops these cluster-wide test roles if they exist, with
-- whatever they own or were granted in this database.
CREATE FUNCTION pg_temp.drop_test_roles(roles text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY roles LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('DROP OWNED BY %I', r);
      EXECUTE format('DROP ROLE %I', r);
    END IF;
  END LOOP;
END
$$;
