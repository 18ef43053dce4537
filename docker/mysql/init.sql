-- Demo schema for docker-compose.yml. The mysql image runs this once, on the
-- first start with an empty data volume, after it has created the user
-- 'binlog2es'@'%' from MYSQL_USER / MYSQL_PASSWORD.
--
-- binlog2es runs with [snapshot] mode = "initial" (docker/binlog2es.toml): on
-- its first start it copies these rows, then streams every later change.

SET NAMES utf8mb4;
CREATE DATABASE IF NOT EXISTS shop CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
USE shop;

CREATE TABLE customers (
  id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name       VARCHAR(200)    NOT NULL,
  email      VARCHAR(320)    NOT NULL,
  created_at DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY uq_customers_email (email)
);

-- No FOREIGN KEY ... ON DELETE CASCADE on purpose: InnoDB applies cascades
-- inside the storage engine and they never appear in the binlog, so no
-- binlog reader can see them.
CREATE TABLE orders (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  customer_id BIGINT UNSIGNED NOT NULL,
  total       DECIMAL(12,2)   NOT NULL,
  status      VARCHAR(32)     NOT NULL DEFAULT 'new',
  note        TEXT            NULL,
  updated_at  TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY ix_orders_customer (customer_id)
);

INSERT INTO customers (name, email, created_at) VALUES
  ('Ada Lovelace',   'ada@example.com',   '2024-02-29 13:45:01.123456'),
  ('Grace Hopper',   'grace@example.com', '2024-03-01 09:00:00.000000'),
  ('Zoë Ångström',   'zoe@example.com',   '2024-03-02 18:30:15.500000');

INSERT INTO orders (customer_id, total, status, note) VALUES
  (1,   19.99, 'new',     NULL),
  (1, 1250.00, 'paid',    'gift wrap'),
  (2,    5.50, 'shipped', NULL),
  (3,  999.95, 'new',     'leave at the door');

-- Least privilege for binlog2es: SELECT (reading tables; may be narrowed to
-- shop.*), RELOAD (consistent snapshots), REPLICATION SLAVE (binlog stream),
-- REPLICATION CLIENT (SHOW BINARY LOG STATUS, server checks).
GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'binlog2es'@'%';
