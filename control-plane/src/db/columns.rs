//! How the repositories read and write columns that are more than a plain string or number.
//!
//! Reading is strict: a stored name this version does not know, malformed JSON, or a number
//! out of its type's range fails the row with an error naming the column and the value,
//! instead of quietly becoming a default. A row written by a newer version, or corrupted by
//! hand, then shows up as an error to fix, not as a project silently served on other terms.
//!
//! Writing the long INSERTs and UPDATEs goes through [`ColumnValues`], which lists each
//! column beside its value so no `$n` placeholder has to be counted by hand.

use serde::de::DeserializeOwned;
use sqlx::any::{Any, AnyArguments, AnyTypeInfo, AnyValueRef};
use sqlx::error::BoxDynError;
use sqlx::query::Query;
use sqlx::{Decode, Type};

use super::Backend;

/// An enum stored in a TEXT column by its serde name (`owner`, `past_due`, `enforce`).
///
/// The Any driver decodes only strings, numbers, booleans and bytes, so the name is read as
/// a string and then matched against the enum's names; an unknown one is a decode error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named<T>(pub T);

impl<T> Type<Any> for Named<T> {
    fn type_info() -> AnyTypeInfo {
        <String as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <String as Type<Any>>::compatible(ty)
    }
}

impl<'r, T: DeserializeOwned> Decode<'r, Any> for Named<T> {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        let name = <String as Decode<Any>>::decode(value)?;
        serde_json::from_value(serde_json::Value::String(name.clone()))
            .map(Named)
            .map_err(|_| unknown_value(&name))
    }
}

/// Why a stored name decodes to nothing.
fn unknown_value(name: &str) -> BoxDynError {
    format!("unknown value {name:?}").into()
}

/// The error for a stored name that no variant has, naming its column as a decode error
/// from the driver would.
pub fn unknown_name(column: &str, name: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: format!("{column:?}"),
        source: unknown_value(name),
    }
}

/// JSON stored in a TEXT column (domain lists, API key scopes, risk factors).
///
/// sqlx's `#[sqlx(json)]` needs `Json<T>` to decode, which the Any driver does not implement
/// (its types are strings, numbers, booleans and bytes), so the text is read as a string and
/// parsed here; JSON that does not parse, or names an unknown variant, is a decode error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText<T>(pub T);

impl<T> Type<Any> for JsonText<T> {
    fn type_info() -> AnyTypeInfo {
        <String as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <String as Type<Any>>::compatible(ty)
    }
}

impl<'r, T: DeserializeOwned> Decode<'r, Any> for JsonText<T> {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <String as Decode<Any>>::decode(value)?;
        serde_json::from_str(&text)
            .map(JsonText)
            .map_err(|err| format!("{err} in {text:?}").into())
    }
}

/// A BIGINT standing for a narrower or unsigned number (a `u32` key version, a `u64` limit
/// or counter); one out of that type's range is a decode error.
///
/// The derive's `#[sqlx(try_from = "i64")]` does the same conversion and works with the Any
/// driver, but sqlx 0.9.0 reports its failure as "unprintable error: (unprintable type)",
/// losing the value; this names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InRange<T>(pub T);

impl<T> Type<Any> for InRange<T> {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty)
    }
}

impl<'r, T: TryFrom<i64>> Decode<'r, Any> for InRange<T> {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        let number = <i64 as Decode<Any>>::decode(value)?;
        T::try_from(number)
            .map(InRange)
            .map_err(|_| format!("{number} is out of range").into())
    }
}

/// A value a column is set to. The schema stores text and BIGINT numbers (flags as 0/1),
/// either nullable.
pub enum ColumnValue {
    /// TEXT.
    Text(Option<String>),
    /// BIGINT.
    Number(Option<i64>),
}

impl From<&str> for ColumnValue {
    fn from(text: &str) -> Self {
        Self::Text(Some(text.to_owned()))
    }
}

impl From<String> for ColumnValue {
    fn from(text: String) -> Self {
        Self::Text(Some(text))
    }
}

impl From<Option<&str>> for ColumnValue {
    fn from(text: Option<&str>) -> Self {
        Self::Text(text.map(str::to_owned))
    }
}

impl From<Option<String>> for ColumnValue {
    fn from(text: Option<String>) -> Self {
        Self::Text(text)
    }
}

impl From<i64> for ColumnValue {
    fn from(number: i64) -> Self {
        Self::Number(Some(number))
    }
}

impl From<Option<i64>> for ColumnValue {
    fn from(number: Option<i64>) -> Self {
        Self::Number(number)
    }
}

impl From<bool> for ColumnValue {
    fn from(flag: bool) -> Self {
        Self::Number(Some(i64::from(flag)))
    }
}

/// `($1, $2), ($3, $4)` for `rows` rows of `columns` values: the VALUES (or IN) list of a
/// multi-row statement, numbered as the values are then bound, row by row. SQLite gets `?`,
/// which it numbers the same way: sqlx-sqlite looks every `$n` up by name, and SQLite finds a
/// name by scanning all of them, so a statement of n named values costs n² comparisons to
/// bind (two thirds of telemetry ingest's time at 1,600 values, in a profile).
pub fn rows_of_placeholders(backend: Backend, rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let values: Vec<String> = (1..=columns)
                .map(|column| match backend {
                    Backend::Sqlite => "?".to_owned(),
                    Backend::Postgres => format!("${}", row * columns + column),
                })
                .collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Columns listed beside the values they get, for the statements too long to pair `$n`
/// placeholders with binds by eye. The SQL is built from the list with the backend's
/// placeholders ([`rows_of_placeholders`]; sqlx's `QueryBuilder` would write `?` for Any,
/// which PostgreSQL refuses). Table, column and extra SQL are `&'static str`: only text
/// written in the code goes into the statement; every value is bound.
#[derive(Default)]
pub struct ColumnValues(Vec<(&'static str, ColumnValue)>);

impl ColumnValues {
    /// Sets `column` to `value`.
    pub fn set(mut self, column: &'static str, value: impl Into<ColumnValue>) -> Self {
        self.0.push((column, value.into()));
        self
    }

    /// `INSERT INTO {table} (…) VALUES ($1, …) {then}`, with every value bound.
    pub fn insert_into(
        self,
        backend: Backend,
        table: &'static str,
        then: &'static str,
    ) -> Query<'static, Any, AnyArguments> {
        Self::insert_rows_into(backend, vec![self], table, then)
    }

    /// `INSERT INTO {table} (…) VALUES ($1, …), ($n, …) {then}`: one statement for all of
    /// `rows`, which set the same columns in the same order. Only a single row's statement is
    /// kept prepared: one per row count would crowd the connection's statement cache.
    pub fn insert_rows_into(
        backend: Backend,
        rows: Vec<Self>,
        table: &'static str,
        then: &'static str,
    ) -> Query<'static, Any, AnyArguments> {
        let columns: Vec<&str> = rows
            .first()
            .map(|row| row.0.iter().map(|(column, _)| *column).collect())
            .unwrap_or_default();
        debug_assert!(
            rows.iter().all(|row| row
                .0
                .iter()
                .map(|(column, _)| *column)
                .eq(columns.iter().copied())),
            "every row sets the same columns"
        );
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {} {then}",
            columns.join(", "),
            rows_of_placeholders(backend, rows.len(), columns.len())
        );
        let single = rows.len() == 1;
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(single);
        rows.into_iter()
            .fold(query, |query, row| row.bind_to(query))
    }

    /// `UPDATE {table} SET column = $1, …, {also} WHERE {key_column} = $n`, with every value
    /// bound and then the key, last like its placeholder.
    pub fn update_where(
        self,
        table: &'static str,
        also: &'static str,
        key_column: &'static str,
        key: impl Into<ColumnValue>,
    ) -> Query<'static, Any, AnyArguments> {
        let assignments: Vec<String> = self
            .0
            .iter()
            .enumerate()
            .map(|(index, (column, _))| format!("{column} = ${}", index + 1))
            .collect();
        let sql = format!(
            "UPDATE {table} SET {}, {also} WHERE {key_column} = ${}",
            assignments.join(", "),
            self.0.len() + 1
        );
        self.set(key_column, key)
            .bind_to(sqlx::query(sqlx::AssertSqlSafe(sql)))
    }

    fn bind_to(
        self,
        query: Query<'static, Any, AnyArguments>,
    ) -> Query<'static, Any, AnyArguments> {
        self.0
            .into_iter()
            .fold(query, |query, (_, value)| match value {
                ColumnValue::Text(text) => query.bind(text),
                ColumnValue::Number(number) => query.bind(number),
            })
    }
}
