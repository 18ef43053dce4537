//! The table model every stage shares, in one leaf module that imports no stage:
//! per-table column metadata (names, types, signedness, collations, ENUM/SET labels, key
//! columns) from the table map event's optional metadata (`binlog_row_metadata=FULL`) or,
//! where that is missing, from `information_schema`; the column classification the decoder
//! and the index mapping share; and every catalog query. On MariaDB, text columns that are
//! really JSON (the `JSON` alias is a LONGTEXT with a `json_valid(col)` CHECK constraint)
//! are found in `information_schema.CHECK_CONSTRAINTS`.

pub mod catalog;
pub mod family;
pub mod keyless;
pub mod table;
pub mod table_map;

pub use catalog::{CatalogColumns, read_catalog, read_json_columns};
pub use family::ColumnFamily;
pub use keyless::{clear_keyless, is_keyless, note_keyless};
pub use table::{BINARY_COLLATION, ColumnSpec, DecoderCache, SchemaError, TableSchema, build};
pub use table_map::{MapInfo, mark_json_columns, merge_catalog, read_table_map};
