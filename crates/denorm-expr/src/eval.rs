//! Expression evaluation (in progress).
use denorm_types::{Datum, Dialect, Value};
use crate::expr::Expr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("integer out of range")]
    IntegerOverflow,
}

impl Expr {
    pub fn eval(&self, row: &[Datum<'_>], dialect: Dialect) -> Result<Value, EvalError> {
        let _ = (row, dialect);
        unimplemented!()
    }
}
