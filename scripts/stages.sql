-- Where the time between the acknowledgement and the published results
-- goes, per stage, from the central log store: every stage logs a line per
-- object or batch naming the trace ids of its records ("object written" by
-- the ingest API, "object loaded" by load, "changes applied" by the
-- replication stream, "aggregates published" by publish), so each traced
-- request gets the time it passed each stage. Prints p50/p90/p99/max in
-- milliseconds per stage over every trace in the store.
--
--   sqlite3 -header -column "file:DATA_DIR/logs.db?mode=ro" < scripts/stages.sql
--
-- (A group-committed object names up to 16 of its requests' traces.)
WITH hop AS (
  SELECT lt.trace_id AS tr, l.msg AS msg, min(julianday(l.time) * 86400) AS at
  FROM logs l JOIN log_traces lt ON lt.log_id = l.id
  WHERE (l.cloud = 'aws' AND l.msg IN ('object written', 'object loaded')) -- the cloud the front door writes to
     OR l.msg IN ('changes applied', 'aggregates published')
  GROUP BY 1, 2),
trace AS (
  SELECT max(iif(msg = 'object written', at, NULL)) AS w, max(iif(msg = 'object loaded', at, NULL)) AS l,
         max(iif(msg = 'changes applied', at, NULL)) AS a, max(iif(msg = 'aggregates published', at, NULL)) AS p
  FROM hop GROUP BY tr),
stage AS (
  SELECT 'written → loaded' AS s, 1000 * (l - w) AS ms FROM trace WHERE l AND w
  UNION ALL SELECT 'loaded → replicated', 1000 * (a - l) FROM trace WHERE a AND l
  UNION ALL SELECT 'replicated → published', 1000 * (p - a) FROM trace WHERE p AND a
  UNION ALL SELECT 'written → published', 1000 * (p - w) FROM trace WHERE p AND w),
ranked AS (SELECT s, ms, cume_dist() OVER (PARTITION BY s ORDER BY ms) AS r FROM stage)
SELECT s, count(*) AS traces, round(min(iif(r >= 0.5, ms, NULL))) AS p50, round(min(iif(r >= 0.9, ms, NULL))) AS p90,
       round(min(iif(r >= 0.99, ms, NULL))) AS p99, round(max(ms)) AS max
FROM ranked GROUP BY s ORDER BY CASE s WHEN 'written → loaded' THEN 1 WHEN 'loaded → replicated' THEN 2 WHEN 'replicated → published' THEN 3 ELSE 4 END;
