//! The plan IR between the SQL planner (`denorm-sql`) and the incremental
//! operators (`denorm-core`).
//!
//! ```text
//!  SQL text ──denorm-sql──► Plan (this crate) ──denorm-core──► operator graph
//! ```
//!
//! * [`Expr`]: a typed scalar expression over the columns of one row, with the
//!   source dialect's semantics fixed at plan time (see [`Expr::eval`]).
//! * [`AggregateFunc`]: the aggregates a `GROUP BY` may compute.
//! * [`Plan`]: a tree of relational operators whose every node the core knows
//!   how to maintain incrementally.
//!
//! ```
//! use denorm_expr::{BinaryOp, Expr};
//! use denorm_types::{Datum, Dialect};
//! let e = Expr::binary(BinaryOp::Add, Expr::Column(0), Expr::Literal(Datum::Int(1)));
//! assert_eq!(e.eval(&[Datum::Int(41)], Dialect::Sqlite).unwrap(), Datum::Int(42));
//! ```

mod aggregate;
mod datetime;
mod eval;
mod expr;
mod extreme;
pub mod function;
pub mod interval;
mod json_path;
mod optimize;
mod pg;
mod plan;
pub mod printf;
mod scalar;
mod selectivity;
mod to_char;

pub use aggregate::{
    split_filter, Aggregate, AggregateFunc, AggregateOrder, ConcatSpec, JsonArraySpec, OrderTerm, SqliteSum,
};
pub use datetime::reads_the_clock;
pub use eval::EvalError;
pub use expr::{BinaryOp, DateField, DateFunc, Expr, Func, Interval, JsonAccess, TrimSide};
pub use optimize::optimize;
pub use plan::{JoinKind, Numbering, Plan, Shift, SortKey};
pub use selectivity::{error_free, selectivity};
