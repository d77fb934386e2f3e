-- Included first by every pgTAP file (\ir helpers/reset.sql): a fresh world for the test.
-- The warehouse is the current database; its source is the database named like it plus
-- '_src' (test/env.sh creates both). The source gets the sample back, the warehouse gets a
-- fresh sicoop_etl connected to that source. Tests change the source through the foreign
-- tables sicoop.src_* (postgres_fdw), or with dblink for what those cannot do (DDL).
\set QUIET 1
\set ON_ERROR_STOP 1
\o /dev/null
\getenv pgport PGPORT
\set sample `cat ../data/sample_source.sql`
SELECT current_database() || '_src' AS srcdb \gset
SELECT format('host=localhost port=%s dbname=%s user=%s', :'pgport', :'srcdb', current_user) AS srcconn \gset
SELECT dblink_exec(:'srcconn', 'DROP TABLE IF EXISTS movimentacao_cartao, cartao, conta, associado CASCADE');
SELECT dblink_exec(:'srcconn', :'sample');
SET client_min_messages = warning;
-- DROP EXTENSION keeps the warehouse's data (it is not the extension's): drop it too.
DROP EXTENSION IF EXISTS sicoop_etl CASCADE;
DROP SCHEMA IF EXISTS sicoop CASCADE;
DROP SERVER IF EXISTS sicoop_source CASCADE;
CREATE EXTENSION sicoop_etl CASCADE;
SELECT sicoop.connect_source('localhost', :pgport, :'srcdb', current_user);
-- (runs say each step's figures in a NOTICE: the tests assert what they check)
SET client_min_messages = warning;
SET sicoop.as_of = '2025-08-15';
SET datestyle = 'ISO, YMD';
SET timezone = 'America/Sao_Paulo';
\o
