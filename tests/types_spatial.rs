//! GEOMETRY types become GeoJSON geometry objects with the coordinates as stored, no `bbox` or
//! `crs` (SPEC §6): MariaDB's SRID + WKB, parsed by hand (src/decode/geo.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

const SPATIAL: &str = "CREATE TABLE t (\
    id INT PRIMARY KEY, \
    g GEOMETRY NULL, \
    p POINT NULL, \
    ls LINESTRING NULL, \
    pg POLYGON NULL, \
    mp MULTIPOINT NULL, \
    mls MULTILINESTRING NULL, \
    mpg MULTIPOLYGON NULL, \
    gc GEOMETRYCOLLECTION NULL\
    )";

#[tokio::test]
async fn geometries_are_geojson() {
    // GIVEN a daemon streaming every spatial column type (the index is created first, the
    // geometry columns mapped as disabled objects: GeoJSON of several shapes in one field)
    let props: serde_json::Map<String, serde_json::Value> =
        ["g", "p", "ls", "pg", "mp", "mls", "mpg", "gc"]
            .iter()
            .map(|c| ((*c).to_owned(), json!({"type": "object", "enabled": false})))
            .collect();
    let mapping = json!({"mappings": {"properties": props}});
    let mut f = Fixture::start_with("spatial", SPATIAL, Some(mapping), |b| b).await;

    // WHEN shapes are written: fractional, negative and large coordinates, a polygon with a
    // hole, nested and empty collections, an SRID other than 0, and NULLs
    f.sql(
        "INSERT INTO t VALUES (1, \
           ST_GeomFromText('POINT(1.5 -2.25)'), \
           ST_GeomFromText('POINT(13.404954 52.520008)', 4326), \
           ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0.5)'), \
           ST_GeomFromText('POLYGON((0 0, 10 0, 10 10, 0 10, 0 0), (2 2, 3 2, 3 3, 2 2))'), \
           ST_GeomFromText('MULTIPOINT(1 2, 3 4)'), \
           ST_GeomFromText('MULTILINESTRING((0 0, 1 1), (2 2, 3 3))'), \
           ST_GeomFromText('MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))'), \
           GeometryCollection(Point(1, 1), \
             LineString(Point(0, 0), Point(10000000000, -0.0000000001)), \
             GeometryCollection(Point(2, 2)))), \
         (2, ST_GeomFromText('GEOMETRYCOLLECTION EMPTY'), NULL, NULL, NULL, NULL, NULL, NULL, \
           ST_GeomFromText('GEOMETRYCOLLECTION EMPTY')), \
         (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .await;
    f.sql("UPDATE t SET g = ST_GeomFromText('LINESTRING(-180 -90, 180 90)') WHERE id = 3")
        .await;

    // THEN each column is the GeoJSON geometry
    f.wait_for_count(3).await;
    assert!(
        wait_until(secs(60), async || f
            .doc("3")
            .await
            .is_some_and(|d| !d["g"].is_null()))
        .await,
        "the update never arrived"
    );
    let expected = [
        (
            "1",
            json!({
                "id": 1,
                "g": {"type": "Point", "coordinates": [1.5, -2.25]},
                "p": {"type": "Point", "coordinates": [13.404954, 52.520008]},
                "ls": {"type": "LineString", "coordinates": [[0.0, 0.0], [1.0, 1.0], [2.0, 0.5]]},
                "pg": {"type": "Polygon", "coordinates": [
                    [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0], [0.0, 0.0]],
                    [[2.0, 2.0], [3.0, 2.0], [3.0, 3.0], [2.0, 2.0]]]},
                "mp": {"type": "MultiPoint", "coordinates": [[1.0, 2.0], [3.0, 4.0]]},
                "mls": {"type": "MultiLineString", "coordinates": [
                    [[0.0, 0.0], [1.0, 1.0]], [[2.0, 2.0], [3.0, 3.0]]]},
                "mpg": {"type": "MultiPolygon", "coordinates": [
                    [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]],
                    [[[5.0, 5.0], [6.0, 5.0], [6.0, 6.0], [5.0, 5.0]]]]},
                "gc": {"type": "GeometryCollection", "geometries": [
                    {"type": "Point", "coordinates": [1.0, 1.0]},
                    {"type": "LineString", "coordinates": [[0.0, 0.0], [1e10, -1e-10]]},
                    {"type": "GeometryCollection", "geometries": [
                        {"type": "Point", "coordinates": [2.0, 2.0]}]}]},
            }),
        ),
        (
            "2",
            json!({"id": 2,
                   "g": {"type": "GeometryCollection", "geometries": []},
                   "p": null, "ls": null, "pg": null, "mp": null, "mls": null, "mpg": null,
                   "gc": {"type": "GeometryCollection", "geometries": []}}),
        ),
        (
            "3",
            json!({"id": 3,
                   "g": {"type": "LineString", "coordinates": [[-180.0, -90.0], [180.0, 90.0]]},
                   "p": null, "ls": null, "pg": null, "mp": null, "mls": null, "mpg": null,
                   "gc": null}),
        ),
    ];
    for (id, want) in &expected {
        let doc = f
            .doc(id)
            .await
            .unwrap_or_else(|| panic!("no document {id}"));
        assert_fields(&doc, want, &format!("document {id}"));
    }
    // AND the coordinates' text is the shortest round trip of the stored doubles
    let raw = f.raw_source("1").await;
    assert!(raw.contains("[13.404954,52.520008]"), "{raw}");
    assert!(raw.contains("[10000000000.0,-1e-10]"), "{raw}");
    f.daemon.assert_running();
}
