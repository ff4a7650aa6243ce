#!/bin/bash
# compose/target_data.sh — docker-entrypoint-initdb.d hook: the clinic target schema
# and its "already migrated" part.
set -euo pipefail
psql -X -v ON_ERROR_STOP=1 -q -U postgres -d postgres -v scale="${CLINIC_SCALE:-1}" \
    -f /fixtures/target_schema.sql -f /fixtures/target_migrated.sql
