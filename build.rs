//! One build-time setting, for the tests: the PostgreSQL variants of the integration tests
//! are compiled `#[ignore]`d unless `MISSIVE_TEST_POSTGRES_URL` is set, so a run without
//! PostgreSQL reports them as ignored, never as passed (tests/api/helpers.rs).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(missive_postgres_tests)");
    println!("cargo::rerun-if-env-changed=MISSIVE_TEST_POSTGRES_URL");
    if std::env::var_os("MISSIVE_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=missive_postgres_tests");
    }
}
