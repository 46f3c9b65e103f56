//! The multi-node suite: real `missive` processes on one fresh PostgreSQL database and a
//! private `redis-server` per test (never the shared one), real WebSocket clients, a
//! timeout on every wait. Cluster mode needs PostgreSQL: without
//! MISSIVE_TEST_POSTGRES_URL at build time these tests are reported as ignored.

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../api/process.rs"]
#[allow(dead_code)]
mod process;

mod harness;

mod delivery;
mod presence;
mod redis_faults;
