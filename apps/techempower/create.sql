-- apps/techempower/create.sql: TechEmpower's schema and data for PostgreSQL,
-- as toolset/databases/postgres/create-postgres.sql of
-- TechEmpower/FrameworkBenchmarks defines them: a World table of 10 000 rows
-- (id 1..10000, randomNumber 1..10000) and a Fortune table of 12 rows.
--
-- TechEmpower creates each table twice, unquoted (World -> world, what
-- raw drivers query) and quoted ("World", what case-preserving ORMs
-- query); so does this file, so that any peer finds the names it expects.
-- Column randomNumber is unquoted, so PostgreSQL stores it as
-- randomnumber; the JSON key "randomNumber" is the application's.
--
-- Differences from TechEmpower's file, none visible to a query: no
-- benchmarkdbuser role or GRANTs (apps/techempower/db.sh loads this as the
-- database's owner), no pg_stat_statements (it needs
-- shared_preload_libraries), and an ANALYZE at the end so that the first
-- requests already have statistics.  Re-running it replaces the tables.

SET client_min_messages = warning;

BEGIN;

DROP TABLE IF EXISTS world, fortune, "World", "Fortune";

CREATE TABLE world (
  id integer NOT NULL,
  randomNumber integer NOT NULL DEFAULT 0,
  PRIMARY KEY (id)
);
INSERT INTO world (id, randomnumber)
SELECT x.id, least(floor(random() * 10000 + 1), 10000)
FROM generate_series(1, 10000) AS x(id);

CREATE TABLE fortune (
  id integer NOT NULL,
  message varchar(2048) NOT NULL,
  PRIMARY KEY (id)
);
INSERT INTO fortune (id, message) VALUES
  (1, 'fortune: No such file or directory'),
  (2, 'A computer scientist is someone who fixes things that aren''t broken.'),
  (3, 'After enough decimal places, nobody gives a damn.'),
  (4, 'A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1'),
  (5, 'A computer program does what you tell it to do, not what you want it to do.'),
  (6, 'Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen'),
  (7, 'Any program that runs right is obsolete.'),
  (8, 'A list is only as strong as its weakest link. — Donald Knuth'),
  (9, 'Feature: A bug with seniority.'),
  (10, 'Computers make very fast, very accurate mistakes.'),
  (11, '<script>alert("This should not be displayed in a browser alert box.");</script>'),
  (12, 'フレームワークのベンチマーク');

CREATE TABLE "World" (
  id integer NOT NULL,
  randomNumber integer NOT NULL DEFAULT 0,
  PRIMARY KEY (id)
);
INSERT INTO "World" (id, randomnumber)
SELECT x.id, least(floor(random() * 10000 + 1), 10000)
FROM generate_series(1, 10000) AS x(id);

CREATE TABLE "Fortune" (
  id integer NOT NULL,
  message varchar(2048) NOT NULL,
  PRIMARY KEY (id)
);
INSERT INTO "Fortune" (id, message) SELECT id, message FROM fortune;

COMMIT;

ANALYZE world, fortune, "World", "Fortune";
