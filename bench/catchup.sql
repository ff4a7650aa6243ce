-- bench/catchup.sql — what the catch-up benchmarks plant in a target that holds every
-- source row (bench/backfill.sh, bench/ab.sh): 1% of the rows deleted (scattered),
-- 0.5% made stale, as an application would (FK checks off).
SET session_replication_role = replica;
DELETE FROM order_tags WHERE abs(hashtext(tag || order_id::text)) % 100 = 37;
DELETE FROM audit_log a WHERE substr(md5(a::text), 1, 2) < '03';
DELETE FROM orders WHERE legacy_id % 100 = 37;
DELETE FROM patients WHERE legacy_id % 100 = 37;
DELETE FROM doctors WHERE legacy_id % 100 = 37;
DELETE FROM profiles WHERE legacy_id % 100 = 37;
DELETE FROM offices WHERE legacy_id % 100 = 37;
UPDATE orders SET status = status || ' (stale)' WHERE legacy_id % 200 = 11;
UPDATE patients SET full_name = full_name || ' (stale)' WHERE legacy_id % 200 = 11;
UPDATE profiles SET full_name = full_name || ' (stale)' WHERE legacy_id % 200 = 11;
UPDATE doctors SET license_no = license_no || ' (stale)' WHERE legacy_id % 200 = 11;
UPDATE offices SET name = name || ' (stale)' WHERE legacy_id % 200 = 11;
UPDATE order_tags SET added_at = added_at + interval '1 second' WHERE abs(hashtext(tag || order_id::text)) % 200 = 11;
