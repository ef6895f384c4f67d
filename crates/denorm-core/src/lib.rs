//! Incremental view maintenance: pure operators and the executor that drives
//! them.
//!
//! ```text
//!  SourceBatch ──► Input (one per source table, shared by every view reading it)
//!                    │
//!                    ▼  Filter / Map          stateless, row at a time
//!                    ▼  Arrange               index by join key (shared by joins that need it)
//!                    ▼  Join                  symmetric hash join over two arrangements
//!                    ▼  Reduce / Distinct     per-group accumulators
//!                    ▼  TopK                  per-partition ordered rows, the first k emitted
//!                    ▼
//!                  View                       keyed current contents, key checked
//! ```
//!
//! Every operator takes a consolidated batch of `(row, diff)` changes and
//! returns its output changes; nodes with equal definitions over equal inputs
//! are built once and shared between views. The executor ([`Runtime`]) moves
//! one batch through the graph in topological order, so after every batch each
//! view equals its query over the accumulated source.
//!
//! ```
//! use denorm_core::{Dataflow, Runtime, SourceBatch};
//! use denorm_expr::{Aggregate, AggregateFunc, Plan};
//! use denorm_types::{Catalog, ColumnSchema, Datum, Dialect, Position, Row, ScalarType, TableSchema};
//!
//! let mut catalog = Catalog::new();
//! let col = |name: &str| ColumnSchema { name: name.into(), ty: ScalarType::Int, nullable: false };
//! catalog.add(TableSchema { name: "reviews".into(), columns: vec![col("id"), col("product_id")], primary_key: vec![0], unique_keys: vec![] });
//! // SELECT product_id, COUNT(*) FROM reviews GROUP BY product_id
//! let plan = Plan::Reduce {
//!     input: Box::new(Plan::Get { table: "reviews".into(), arity: 2 }),
//!     group_key: vec![1],
//!     aggregates: vec![Aggregate { func: AggregateFunc::Count, arg: None }],
//! };
//! let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
//! let view = dataflow.add_view("review_counts", &plan, vec![0], true).unwrap();
//! let review = |id, product| Row::pack([Datum::Int(id), Datum::Int(product)]);
//! let batch = SourceBatch { position: Position(1), tables: vec![("reviews".into(), vec![(review(1, 7), 1), (review(2, 7), 1)])] };
//! let out = dataflow.apply(&batch);
//! assert_eq!(out.views[0].changes, vec![(Row::pack([Datum::Int(7), Datum::Int(2)]), 1)]);
//! assert_eq!(dataflow.view_rows(view).len(), 1);
//! ```

pub mod checkpoint;
mod estimate;
mod executor;
mod graph;
mod index;
mod memory;
mod operator;
pub mod reference;
mod view;

pub use estimate::{StateEstimate, TableStats, ViewRowsEstimate, COMPUTED_WIDTH};
pub use executor::{BatchOutput, BuildError, Dataflow, Runtime, SourceBatch, ViewId, ViewOutput};
pub use operator::TopKState;
pub use view::ViewError;

/// The hasher of every operator's hash maps.
pub(crate) type Hasher = ahash::RandomState;
