#!/usr/bin/env bash
# Writes sicoop._warehouse_definition() anew, in src/sql/warehouse_definition.sql (make then
# assembles it into the next version's install and update scripts): the signature of a warehouse as the current build makes it (a fresh install in a
# scratch database, connected to the sample source). Run it after changing what the
# warehouse or the extension's own tables are; test/pgtap/10_schema.sql fails until then.
#   bash test/tools/warehouse_definition.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PGHOST=localhost PGPORT=${SICOOP_PGPORT:-5499} PGUSER=postgres
PGBIN=${SICOOP_PGROOT:-}/usr/lib/postgresql/15/bin
DB=sicoop_definition
bash test/env.sh tapdb "$DB" >/dev/null
# (The guard compares with the definition being written: it does not fire while the scratch
# warehouse is made, as for a replica's session.)
(cd test/pgtap && PGOPTIONS="-c session_replication_role=replica" "$PGBIN/psql" -d "$DB" -X -q -v ON_ERROR_STOP=1 -f helpers/reset.sql >/dev/null)
"$PGBIN/psql" -d "$DB" -X -At -v ON_ERROR_STOP=1 -c "SELECT l FROM unnest(sicoop._warehouse_signature()) l" >"$DB.lines"
python3 - "$DB.lines" src/sql/warehouse_definition.sql <<'PY'
import re, sys
lines = open(sys.argv[1]).read().strip('\n')
for path in sys.argv[2:]:
    text = open(path).read()
    new, n = re.subn(r'(\$lines\$\n).*?(\n\$lines\$)', lambda m: m.group(1) + lines + m.group(2), text, flags=re.S)
    if n != 1:
        sys.exit(f'{path}: expected one $lines$ ... $lines$ block, found {n}')
    open(path, 'w').write(new)
    print(f'{path}: {lines.count(chr(10)) + 1} lines')
PY
rm -f "$DB.lines"
make -s >/dev/null
