-- The error a statement raises: {sqlstate, message, detail, hint, context}; NULL if none.
CREATE FUNCTION pg_temp.error_of(sql text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; det text; hnt text; ctx text;
BEGIN
  EXECUTE sql;
  RETURN NULL;
EXCEPTION WHEN OTHERS OR query_canceled THEN  -- OTHERS alone does not catch 57014
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                          hnt = PG_EXCEPTION_HINT, ctx = PG_EXCEPTION_CONTEXT;
  RETURN ARRAY[st, msg, det, hnt, ctx];
END
$$;
