#!/bin/bash
# compose/source_data.sh — docker-entrypoint-initdb.d hook: the clinic source schema and data.
set -euo pipefail
psql -X -v ON_ERROR_STOP=1 -q -U postgres -d postgres -v scale="${CLINIC_SCALE:-1}" \
    -f /fixtures/source_schema.sql -f /fixtures/source_data.sql
