//! GEOMETRY values → GeoJSON geometry objects (SPEC §6).
//!
//! MySQL and MariaDB store a geometry as a 4-byte little-endian SRID followed by WKB (OGC
//! well-known binary, 2D). The WKB is parsed here by hand, every read bounds-checked, and
//! written straight out as GeoJSON text: coordinates as stored (no reprojection, whatever
//! the SRID), no `bbox`, no `crs`. Bad bytes are a [`GeoError`], never a panic.

/// Why a geometry cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// Fewer bytes than the geometry needs.
    #[error("geometry ends early at byte {0}")]
    Truncated(usize),
    /// A byte-order marker other than 0 or 1.
    #[error("bad WKB byte order {0} at byte {1}")]
    ByteOrder(u8, usize),
    /// A geometry type code that is not 2D OGC (1..=7), or the wrong one inside a multi-geometry.
    #[error("unsupported WKB geometry type {0}")]
    Type(u32),
    /// NaN or infinity: GeoJSON numbers must be finite.
    #[error("coordinate {0} is not a finite number")]
    Coordinate(f64),
    /// Collections nested absurdly deep.
    #[error("geometry collections nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// Bytes after the geometry.
    #[error("{0} bytes after the end of the geometry")]
    Trailing(usize),
}

const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], GeoError> {
        let chunk = self
            .bytes
            .get(self.at..)
            .and_then(|rest| rest.first_chunk::<N>())
            .ok_or(GeoError::Truncated(self.at))?;
        self.at += N;
        Ok(*chunk)
    }

    fn u32(&mut self, little: bool) -> Result<u32, GeoError> {
        let b = self.take::<4>()?;
        Ok(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn f64(&mut self, little: bool) -> Result<f64, GeoError> {
        let b = self.take::<8>()?;
        Ok(if little {
            f64::from_le_bytes(b)
        } else {
            f64::from_be_bytes(b)
        })
    }

    /// A count whose items need at least `min_item` bytes each: refused early when the rest
    /// of the value cannot hold them (so a corrupt count cannot make us loop for long).
    fn count(&mut self, little: bool, min_item: usize) -> Result<u32, GeoError> {
        let n = self.u32(little)?;
        let left = self.bytes.len().saturating_sub(self.at);
        if (n as usize).saturating_mul(min_item) > left {
            return Err(GeoError::Truncated(self.bytes.len()));
        }
        Ok(n)
    }

    /// Byte order marker and type code of a WKB geometry header.
    fn header(&mut self) -> Result<(bool, u32), GeoError> {
        let at = self.at;
        let [order] = self.take::<1>()?;
        let little = match order {
            0 => false,
            1 => true,
            other => return Err(GeoError::ByteOrder(other, at)),
        };
        Ok((little, self.u32(little)?))
    }
}

/// Converts a MySQL/MariaDB GEOMETRY value (SRID + WKB) to GeoJSON text.
///
/// # Errors
/// Truncated or malformed WKB, 3D/measured geometries, non-finite coordinates, trailing bytes.
pub fn geometry_to_geojson(value: &[u8]) -> Result<String, GeoError> {
    let mut out = Vec::with_capacity(64 + value.len() * 3);
    let mut reader = Reader {
        bytes: value,
        at: 0,
    };
    reader.take::<4>()?; // SRID
    write_geometry(&mut reader, &mut out, None, 0)?;
    let trailing = value.len().saturating_sub(reader.at);
    if trailing > 0 {
        return Err(GeoError::Trailing(trailing));
    }
    // Only ASCII was written.
    Ok(out.into_iter().map(char::from).collect())
}

const POINT: u32 = 1;
const LINE_STRING: u32 = 2;
const POLYGON: u32 = 3;
const MULTI_POINT: u32 = 4;
const MULTI_LINE_STRING: u32 = 5;
const MULTI_POLYGON: u32 = 6;
const COLLECTION: u32 = 7;

/// Smallest WKB geometry: byte order, type, one point.
const MIN_GEOMETRY: usize = 1 + 4;

fn write_geometry(
    r: &mut Reader<'_>,
    out: &mut Vec<u8>,
    expected: Option<u32>,
    depth: usize,
) -> Result<(), GeoError> {
    if depth > MAX_DEPTH {
        return Err(GeoError::TooDeep);
    }
    let (little, ty) = r.header()?;
    if expected.is_some_and(|e| e != ty) {
        return Err(GeoError::Type(ty));
    }
    let name = match ty {
        POINT => "Point",
        LINE_STRING => "LineString",
        POLYGON => "Polygon",
        MULTI_POINT => "MultiPoint",
        MULTI_LINE_STRING => "MultiLineString",
        MULTI_POLYGON => "MultiPolygon",
        COLLECTION => "GeometryCollection",
        other => return Err(GeoError::Type(other)),
    };
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(name.as_bytes());
    if ty == COLLECTION {
        out.extend_from_slice(b"\",\"geometries\":[");
        let n = r.count(little, MIN_GEOMETRY)?;
        for i in 0..n {
            if i > 0 {
                out.push(b',');
            }
            write_geometry(r, out, None, depth + 1)?;
        }
        out.extend_from_slice(b"]}");
        return Ok(());
    }
    out.extend_from_slice(b"\",\"coordinates\":");
    match ty {
        POINT => write_point(r, out, little)?,
        LINE_STRING => write_points(r, out, little)?,
        POLYGON => write_rings(r, out, little)?,
        _ => {
            // Multi-geometries: each member is a full WKB geometry of the single type.
            let member = ty - 3;
            let n = r.count(little, MIN_GEOMETRY)?;
            out.push(b'[');
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                let (member_little, member_ty) = r.header()?;
                if member_ty != member {
                    return Err(GeoError::Type(member_ty));
                }
                match member {
                    POINT => write_point(r, out, member_little)?,
                    LINE_STRING => write_points(r, out, member_little)?,
                    _ => write_rings(r, out, member_little)?,
                }
            }
            out.push(b']');
        }
    }
    out.push(b'}');
    Ok(())
}

fn write_point(r: &mut Reader<'_>, out: &mut Vec<u8>, little: bool) -> Result<(), GeoError> {
    let x = r.f64(little)?;
    let y = r.f64(little)?;
    out.push(b'[');
    write_coordinate(out, x)?;
    out.push(b',');
    write_coordinate(out, y)?;
    out.push(b']');
    Ok(())
}

fn write_points(r: &mut Reader<'_>, out: &mut Vec<u8>, little: bool) -> Result<(), GeoError> {
    let n = r.count(little, 16)?;
    out.push(b'[');
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        write_point(r, out, little)?;
    }
    out.push(b']');
    Ok(())
}

fn write_rings(r: &mut Reader<'_>, out: &mut Vec<u8>, little: bool) -> Result<(), GeoError> {
    let n = r.count(little, 4)?;
    out.push(b'[');
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        write_points(r, out, little)?;
    }
    out.push(b']');
    Ok(())
}

fn write_coordinate(out: &mut Vec<u8>, value: f64) -> Result<(), GeoError> {
    if !value.is_finite() {
        return Err(GeoError::Coordinate(value));
    }
    // Integral coordinates print as `1.0` with ryu; GeoJSON readers take either form.
    out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WKB builder (little-endian unless `be`).
    struct Wkb(Vec<u8>, bool);

    impl Wkb {
        fn new(be: bool) -> Self {
            Wkb(Vec::new(), be)
        }
        fn header(mut self, ty: u32) -> Self {
            self.0.push(if self.1 { 0 } else { 1 });
            self.u32(ty)
        }
        fn u32(mut self, v: u32) -> Self {
            let b = if self.1 {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.0.extend_from_slice(&b);
            self
        }
        fn pt(mut self, x: f64, y: f64) -> Self {
            for v in [x, y] {
                let b = if self.1 {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                self.0.extend_from_slice(&b);
            }
            self
        }
        fn raw(mut self, other: Wkb) -> Self {
            self.0.extend_from_slice(&other.0);
            self
        }
    }

    fn with_srid(wkb: Wkb) -> Vec<u8> {
        let mut v = 4326u32.to_le_bytes().to_vec();
        v.extend_from_slice(&wkb.0);
        v
    }

    #[test]
    fn every_ogc_type_becomes_geojson() {
        let point = Wkb::new(false).header(1).pt(1.5, -2.0);
        let line = Wkb::new(false).header(2).u32(2).pt(0.0, 0.0).pt(1.0, 1.0);
        let poly = Wkb::new(false)
            .header(3)
            .u32(1)
            .u32(4)
            .pt(0.0, 0.0)
            .pt(1.0, 0.0)
            .pt(1.0, 1.0)
            .pt(0.0, 0.0);
        let multi_point = Wkb::new(false)
            .header(4)
            .u32(2)
            .raw(Wkb::new(false).header(1).pt(1.0, 2.0))
            .raw(Wkb::new(true).header(1).pt(3.0, 4.0));
        let multi_line = Wkb::new(false)
            .header(5)
            .u32(1)
            .raw(Wkb::new(false).header(2).u32(2).pt(0.0, 0.0).pt(1.0, 1.0));
        let multi_poly = Wkb::new(false).header(6).u32(1).raw(
            Wkb::new(false)
                .header(3)
                .u32(1)
                .u32(4)
                .pt(0.0, 0.0)
                .pt(1.0, 0.0)
                .pt(1.0, 1.0)
                .pt(0.0, 0.0),
        );
        let collection = Wkb::new(false)
            .header(7)
            .u32(2)
            .raw(Wkb::new(false).header(1).pt(1.0, 2.0))
            .raw(Wkb::new(false).header(7).u32(0));
        let cases: Vec<(Wkb, &str)> = vec![
            (point, r#"{"type":"Point","coordinates":[1.5,-2.0]}"#),
            (
                Wkb::new(true).header(1).pt(0.1, 1e300),
                r#"{"type":"Point","coordinates":[0.1,1e300]}"#,
            ),
            (
                line,
                r#"{"type":"LineString","coordinates":[[0.0,0.0],[1.0,1.0]]}"#,
            ),
            (
                poly,
                r#"{"type":"Polygon","coordinates":[[[0.0,0.0],[1.0,0.0],[1.0,1.0],[0.0,0.0]]]}"#,
            ),
            (
                multi_point,
                r#"{"type":"MultiPoint","coordinates":[[1.0,2.0],[3.0,4.0]]}"#,
            ),
            (
                multi_line,
                r#"{"type":"MultiLineString","coordinates":[[[0.0,0.0],[1.0,1.0]]]}"#,
            ),
            (
                multi_poly,
                r#"{"type":"MultiPolygon","coordinates":[[[[0.0,0.0],[1.0,0.0],[1.0,1.0],[0.0,0.0]]]]}"#,
            ),
            (
                collection,
                r#"{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[1.0,2.0]},{"type":"GeometryCollection","geometries":[]}]}"#,
            ),
        ];
        for (wkb, expected) in cases {
            let json = geometry_to_geojson(&with_srid(wkb)).unwrap();
            assert_eq!(json, expected);
            serde_json::from_str::<serde_json::Value>(&json).unwrap();
        }
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0, 0, 0],
            with_srid(Wkb::new(false)),
            with_srid(Wkb::new(false).header(1)),
            with_srid(Wkb::new(false).header(8).pt(0.0, 0.0)),
            with_srid(Wkb::new(false).header(1001).pt(0.0, 0.0)),
            with_srid(Wkb::new(false).header(2).u32(u32::MAX).pt(0.0, 0.0)),
            with_srid(Wkb::new(false).header(1).pt(f64::NAN, 0.0)),
            with_srid(Wkb::new(false).header(1).pt(0.0, 0.0).u32(7)),
            with_srid(
                Wkb::new(false)
                    .header(4)
                    .u32(1)
                    .raw(Wkb::new(false).header(2).u32(0)),
            ),
            {
                let mut v = with_srid(Wkb::new(false).header(1).pt(0.0, 0.0));
                v[4] = 7;
                v
            },
        ];
        for bytes in cases {
            assert!(geometry_to_geojson(&bytes).is_err(), "{bytes:?}");
        }
        // Deep nesting is refused, not a stack overflow.
        let mut deep = Wkb::new(false);
        for _ in 0..200 {
            deep = deep.header(7).u32(1);
        }
        let deep = deep.header(1).pt(0.0, 0.0);
        assert!(matches!(
            geometry_to_geojson(&with_srid(deep)),
            Err(GeoError::TooDeep)
        ));
        // Every truncation and every single-byte corruption of a valid value is handled.
        let good = with_srid(
            Wkb::new(false)
                .header(7)
                .u32(2)
                .raw(
                    Wkb::new(false)
                        .header(3)
                        .u32(1)
                        .u32(2)
                        .pt(0.0, 0.0)
                        .pt(1.0, 1.0),
                )
                .raw(Wkb::new(false).header(1).pt(1.0, 2.0)),
        );
        for i in 0..good.len() {
            let _ = geometry_to_geojson(&good[..i]);
            for b in [0u8, 0x7f, 0xff] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = geometry_to_geojson(&bad);
            }
        }
    }
}
