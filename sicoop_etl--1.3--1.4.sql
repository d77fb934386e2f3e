-- sicoop_etl 1.3 -> 1.4: hardening (issue 16).
--
-- What it does, in place (the warehouse's data is untouched; its layout stays 1.2):
--   (each section below says what it changes and why)
\echo Use "ALTER EXTENSION sicoop_etl UPDATE TO '1.4'" to load this file. \quit

------------------------------------------------------------------------------------------
-- Section: masking and cleaning (finding 4)
------------------------------------------------------------------------------------------

------------------------------------------------------------------------------------------
-- Section: source queries and their errors (findings 7, 10)
------------------------------------------------------------------------------------------

------------------------------------------------------------------------------------------
-- Section: scheduling and export (findings 6, 9)
------------------------------------------------------------------------------------------

------------------------------------------------------------------------------------------
-- Section: handover, statistics, reconciliation, alerts, progress (findings 1, 2, 3, 5, 8)
------------------------------------------------------------------------------------------
