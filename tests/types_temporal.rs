//! Temporal column types at their edges become the strings SPEC §6 prescribes: DATE as
//! `"2024-02-29"`, DATETIME(fsp) with exactly fsp fraction digits, TIMESTAMP(fsp) in UTC with a
//! `Z` whatever the session's or the server's time zone, TIME(fsp) with its sign and hours
//! beyond 24, and every zero date → `null`. Each document is compared field by field with the
//! expected JSON written out literally.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

const DATES: &str = "CREATE TABLE t (\
    id INT PRIMARY KEY, d DATE, \
    dt0 DATETIME, dt1 DATETIME(1), dt2 DATETIME(2), dt3 DATETIME(3), \
    dt4 DATETIME(4), dt5 DATETIME(5), dt6 DATETIME(6))";

#[tokio::test]
async fn dates_and_datetimes_keep_their_range_and_fsp_digits() {
    // GIVEN a daemon streaming a DATE and DATETIME columns of every fsp 0 … 6
    let mut f = Fixture::start("tmp-date", DATES).await;

    // WHEN a leap day with a fraction of every width, the minimum and the maximum of the
    // range, fractions with leading zeros and a whole second at fsp > 0, zero dates and a
    // DATE with a zero month or day (sql_mode '' allows them, in this session only), and NULL
    // are inserted
    f.sql(
        "INSERT INTO t VALUES \
           (1, '2024-02-29', '2024-02-29 13:45:01', '2024-02-29 13:45:01.1', \
               '2024-02-29 13:45:01.12', '2024-02-29 13:45:01.123', \
               '2024-02-29 13:45:01.1234', '2024-02-29 13:45:01.12345', \
               '2024-02-29 13:45:01.123456'), \
           (2, '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00', \
               '1000-01-01 00:00:00', '1000-01-01 00:00:00', '1000-01-01 00:00:00', \
               '1000-01-01 00:00:00', '1000-01-01 00:00:00'), \
           (3, '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.9', \
               '9999-12-31 23:59:59.99', '9999-12-31 23:59:59.999', \
               '9999-12-31 23:59:59.9999', '9999-12-31 23:59:59.99999', \
               '9999-12-31 23:59:59.999999'), \
           (4, '2000-01-01', '2000-01-01 00:00:00', '2000-01-01 00:00:00.0', \
               '2000-01-01 00:00:00.01', '2000-01-01 00:00:00.005', \
               '2000-01-01 00:00:00.0001', '2000-01-01 00:00:00.00001', \
               '2000-01-01 00:00:00.000001'), \
           (7, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .await;
    f.sql(
        "SET SESSION sql_mode = ''; \
         INSERT INTO t VALUES \
           (5, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', \
               '0000-00-00 00:00:00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', \
               '0000-00-00 00:00:00', '0000-00-00 00:00:00'), \
           (6, '2024-00-15', NULL, NULL, NULL, NULL, NULL, NULL, NULL), \
           (8, '2024-02-00', NULL, NULL, NULL, NULL, NULL, NULL, NULL); \
         SET SESSION sql_mode = DEFAULT",
    )
    .await;

    // THEN each document holds exactly these strings (fsp digits, no time zone) or null
    let nulls = |id: u32| {
        json!({"id": id, "d": null, "dt0": null, "dt1": null, "dt2": null, "dt3": null,
               "dt4": null, "dt5": null, "dt6": null})
    };
    f.assert_docs(&[
        (
            "1",
            json!({"id": 1, "d": "2024-02-29",
                       "dt0": "2024-02-29T13:45:01",
                       "dt1": "2024-02-29T13:45:01.1",
                       "dt2": "2024-02-29T13:45:01.12",
                       "dt3": "2024-02-29T13:45:01.123",
                       "dt4": "2024-02-29T13:45:01.1234",
                       "dt5": "2024-02-29T13:45:01.12345",
                       "dt6": "2024-02-29T13:45:01.123456"}),
        ),
        (
            "2",
            json!({"id": 2, "d": "1000-01-01",
                       "dt0": "1000-01-01T00:00:00",
                       "dt1": "1000-01-01T00:00:00.0",
                       "dt2": "1000-01-01T00:00:00.00",
                       "dt3": "1000-01-01T00:00:00.000",
                       "dt4": "1000-01-01T00:00:00.0000",
                       "dt5": "1000-01-01T00:00:00.00000",
                       "dt6": "1000-01-01T00:00:00.000000"}),
        ),
        (
            "3",
            json!({"id": 3, "d": "9999-12-31",
                       "dt0": "9999-12-31T23:59:59",
                       "dt1": "9999-12-31T23:59:59.9",
                       "dt2": "9999-12-31T23:59:59.99",
                       "dt3": "9999-12-31T23:59:59.999",
                       "dt4": "9999-12-31T23:59:59.9999",
                       "dt5": "9999-12-31T23:59:59.99999",
                       "dt6": "9999-12-31T23:59:59.999999"}),
        ),
        (
            "4",
            json!({"id": 4, "d": "2000-01-01",
                       "dt0": "2000-01-01T00:00:00",
                       "dt1": "2000-01-01T00:00:00.0",
                       "dt2": "2000-01-01T00:00:00.01",
                       "dt3": "2000-01-01T00:00:00.005",
                       "dt4": "2000-01-01T00:00:00.0001",
                       "dt5": "2000-01-01T00:00:00.00001",
                       "dt6": "2000-01-01T00:00:00.000001"}),
        ),
        ("5", nulls(5)),
        ("6", nulls(6)),
        ("7", nulls(7)),
        ("8", nulls(8)),
    ])
    .await;
    f.daemon.assert_running();
}

const TIMESTAMPS: &str = "CREATE TABLE t (\
    id INT PRIMARY KEY, \
    ts0 TIMESTAMP NULL, ts3 TIMESTAMP(3) NULL, ts6 TIMESTAMP(6) NULL, \
    dt DATETIME NULL)";

/// Writes TIMESTAMPs under several session time zones and checks they come out in UTC.
async fn write_and_check_timestamps(f: &mut Fixture) {
    // WHEN timestamps are written in +05:00 and -08:00 (the UTC day differs from the local
    // one), the range's ends in UTC, a zero timestamp (sql_mode '' in that session) and NULL;
    // a DATETIME beside them is no instant and stays as written
    f.sql(
        "SET time_zone = '+05:00'; \
         INSERT INTO t VALUES (1, '2024-03-01 02:00:00', '2024-03-01 02:00:00.5', \
           '2024-03-01 02:00:00.123456', '2024-03-01 02:00:00'); \
         SET time_zone = '-08:00'; \
         INSERT INTO t VALUES (2, '2024-02-29 16:45:01', '2024-02-29 16:45:01.250', \
           '2024-02-29 16:45:01.000001', '2024-02-29 16:45:01'); \
         SET time_zone = '+00:00'; \
         INSERT INTO t VALUES (3, '1970-01-01 00:00:01', '1970-01-01 00:00:01', \
           '1970-01-01 00:00:01', '1970-01-01 00:00:01'); \
         INSERT INTO t VALUES (4, '2038-01-19 03:14:07', '2038-01-19 03:14:07.999', \
           '2038-01-19 03:14:07.999999', '2038-01-19 03:14:07'); \
         SET SESSION sql_mode = ''; \
         INSERT INTO t VALUES (5, '0000-00-00 00:00:00', '0000-00-00 00:00:00', \
           '0000-00-00 00:00:00', '0000-00-00 00:00:00'); \
         SET SESSION sql_mode = DEFAULT; \
         INSERT INTO t VALUES (6, NULL, NULL, NULL, NULL); \
         SET time_zone = DEFAULT",
    )
    .await;

    // THEN each TIMESTAMP is the UTC instant with a `Z`, fsp digits, and zero → null
    f.assert_docs(&[
        (
            "1",
            json!({"id": 1, "ts0": "2024-02-29T21:00:00Z",
                       "ts3": "2024-02-29T21:00:00.500Z",
                       "ts6": "2024-02-29T21:00:00.123456Z",
                       "dt": "2024-03-01T02:00:00"}),
        ),
        (
            "2",
            json!({"id": 2, "ts0": "2024-03-01T00:45:01Z",
                       "ts3": "2024-03-01T00:45:01.250Z",
                       "ts6": "2024-03-01T00:45:01.000001Z",
                       "dt": "2024-02-29T16:45:01"}),
        ),
        (
            "3",
            json!({"id": 3, "ts0": "1970-01-01T00:00:01Z",
                       "ts3": "1970-01-01T00:00:01.000Z",
                       "ts6": "1970-01-01T00:00:01.000000Z",
                       "dt": "1970-01-01T00:00:01"}),
        ),
        (
            "4",
            json!({"id": 4, "ts0": "2038-01-19T03:14:07Z",
                       "ts3": "2038-01-19T03:14:07.999Z",
                       "ts6": "2038-01-19T03:14:07.999999Z",
                       "dt": "2038-01-19T03:14:07"}),
        ),
        (
            "5",
            json!({"id": 5, "ts0": null, "ts3": null, "ts6": null, "dt": null}),
        ),
        (
            "6",
            json!({"id": 6, "ts0": null, "ts3": null, "ts6": null, "dt": null}),
        ),
    ])
    .await;
    f.daemon.assert_running();
}

#[tokio::test]
async fn timestamps_are_utc_whatever_the_session_time_zone() {
    // GIVEN a daemon streaming TIMESTAMP(0/3/6) columns from the shared server
    let mut f = Fixture::start("tmp-ts", TIMESTAMPS).await;
    // WHEN / THEN
    write_and_check_timestamps(&mut f).await;
}

#[tokio::test]
async fn timestamps_are_utc_whatever_the_server_time_zone() {
    // GIVEN a MariaDB whose own time zone is +09:00 (the daemon's session, too, defaults to
    // it), and a daemon streaming TIMESTAMP(0/3/6) columns from it
    let env = TestEnv::dedicated_static(&["--default-time-zone=+09:00"]);
    let mut f = Fixture::start_on(env, "tmp-ts-server", TIMESTAMPS, None, |b| b).await;
    // WHEN / THEN the documents are the same
    write_and_check_timestamps(&mut f).await;

    // AND a TIMESTAMP written in the server's own zone is converted from +09:00, too
    f.sql(
        "INSERT INTO t VALUES (7, '2024-01-01 09:00:00', '2024-01-01 08:59:59.999', \
           '2024-01-01 09:00:00.000001', '2024-01-01 09:00:00')",
    )
    .await;
    f.wait_for_count(7).await;
    let doc = f.doc("7").await.expect("document 7");
    assert_fields(
        &doc,
        &json!({"id": 7, "ts0": "2024-01-01T00:00:00Z", "ts3": "2023-12-31T23:59:59.999Z",
                "ts6": "2024-01-01T00:00:00.000001Z", "dt": "2024-01-01T09:00:00"}),
        "document 7",
    );
}

const TIMES: &str = "CREATE TABLE t (\
    id INT PRIMARY KEY, t TIME, t1 TIME(1), t3 TIME(3), t6 TIME(6))";

#[tokio::test]
async fn times_keep_sign_hours_and_fsp_digits() {
    // GIVEN a daemon streaming TIME columns of fsp 0, 1, 3 and 6
    let mut f = Fixture::start("tmp-time", TIMES).await;

    // WHEN the range's ends, zero, negatives just below zero, hours beyond 24 (also written
    // as 'D HH:MM:SS') and NULL are inserted
    f.sql(
        "INSERT INTO t VALUES \
           (1, '-838:59:59', '-12:30:00.5', '100:00:00.123', '-00:00:00.000001'), \
           (2, '838:59:59', '838:59:59.9', '838:59:59.999', '838:59:59.999999'), \
           (3, '00:00:00', '00:00:00', '00:00:00', '00:00:00'), \
           (4, '-00:00:01', '-00:00:00.1', '-838:59:59.999', '-838:59:59.999999'), \
           (5, '24:00:00', '23:59:59.9', '1 02:03:04', '-1 00:00:00.5'), \
           (6, NULL, NULL, NULL, NULL)",
    )
    .await;

    // THEN each document holds the text SELECT shows: sign, all hours, fsp digits
    f.assert_docs(&[
        (
            "1",
            json!({"id": 1, "t": "-838:59:59", "t1": "-12:30:00.5",
                       "t3": "100:00:00.123", "t6": "-00:00:00.000001"}),
        ),
        (
            "2",
            json!({"id": 2, "t": "838:59:59", "t1": "838:59:59.9",
                       "t3": "838:59:59.999", "t6": "838:59:59.999999"}),
        ),
        (
            "3",
            json!({"id": 3, "t": "00:00:00", "t1": "00:00:00.0",
                       "t3": "00:00:00.000", "t6": "00:00:00.000000"}),
        ),
        (
            "4",
            json!({"id": 4, "t": "-00:00:01", "t1": "-00:00:00.1",
                       "t3": "-838:59:59.999", "t6": "-838:59:59.999999"}),
        ),
        (
            "5",
            json!({"id": 5, "t": "24:00:00", "t1": "23:59:59.9",
                       "t3": "26:03:04.000", "t6": "-24:00:00.500000"}),
        ),
        (
            "6",
            json!({"id": 6, "t": null, "t1": null, "t3": null, "t6": null}),
        ),
    ])
    .await;
    f.daemon.assert_running();
}

const INVALID: &str = "CREATE TABLE t (id INT PRIMARY KEY, d DATE, dt DATETIME, dt6 DATETIME(6))";

#[tokio::test]
async fn dates_that_are_no_calendar_dates_are_null_in_stream_copy_and_verify() {
    // GIVEN a daemon streaming DATE and DATETIME columns
    let mut f = Fixture::start("tmp-invalid", INVALID).await;

    // WHEN days past the month's end, which ALLOW_INVALID_DATES lets MySQL store (also
    // 29 February of years that are not leap years), are written beside valid leap days
    f.sql(
        "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'; \
         INSERT INTO t VALUES \
           (1, '2023-02-30', '2023-04-31 10:00:00', '2023-02-29 00:00:00.5'), \
           (2, '1900-02-29', '2023-06-31 23:59:59', '2100-02-29 12:00:00.000001'), \
           (3, '2024-02-29', '2000-02-29 13:45:01', '2023-11-30 00:00:00.25'); \
         SET SESSION sql_mode = DEFAULT",
    )
    .await;

    // THEN every date that is not a calendar date is null, also inside a DATETIME
    let expected = [
        ("1", json!({"id": 1, "d": null, "dt": null, "dt6": null})),
        ("2", json!({"id": 2, "d": null, "dt": null, "dt6": null})),
        (
            "3",
            json!({"id": 3, "d": "2024-02-29", "dt": "2000-02-29T13:45:01",
                   "dt6": "2023-11-30T00:00:00.250000"}),
        ),
    ];
    f.assert_docs(&expected).await;

    // AND the initial copy, which reads the rows over SQL, gives the same documents
    let copy_index = f.env.unique_index("tmp-invalid-copy");
    let mut copy = Daemon::builder(f.env)
        .table(&format!("{}.t", f.db), &copy_index)
        .snapshot_mode("initial")
        .start()
        .await;
    let es = f.env.es();
    let copied = wait_until(secs(60), async || es.count(&copy_index).await == 3).await;
    assert!(copied, "{}", copy.stderr_tail(30));
    for (id, want) in &expected {
        let doc = es
            .get(&copy_index, id)
            .await
            .unwrap_or_else(|| panic!("no copied document {id}"));
        assert_fields(&doc, want, &format!("copied document {id}"));
    }
    assert_eq!(copy.terminate().await, 0);

    // AND verify, which reads them over SQL too, finds the streamed index equal
    let out = f.daemon.cli("verify").await;
    assert_eq!(out.code, 0, "{out}");
    f.daemon.assert_running();
}
