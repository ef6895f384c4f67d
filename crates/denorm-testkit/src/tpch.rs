//! TPC-H as users write it: the schema, the 22 queries exactly as the
//! specification writes them (SQLite syntax; only dates and intervals
//! precomputed, `extract(year from d)` written `strftime('%Y', d)`,
//! `substring(s from 1 for 2)` written `substr(s, 1, 2)` and Q13's derived
//! column list `as c_orders (c_custkey, c_count)` written as an alias inside,
//! as SQLite needs),
//! data from `tpchgen` (the dbgen-compatible generator), and a refresh
//! workload: the specification's RF1 (new orders with their line items) and
//! RF2 (deleted orders with theirs), plus updates of every column the queries
//! read, join keys included.
//!
//! ```text
//!  load(scale) ──► SQLite ──► Refresh::round(rng) ──► Vec<Statement> ──► writes::capture() ──► TableChanges
//! ```
//!
//! [`crate::writes::capture`] runs the statements on the reference database
//! and returns the old/new rows they touched, as the engine's input.

use rusqlite::Connection;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator, PartSuppGenerator,
    RegionGenerator, SupplierGenerator,
};

use crate::writes::Statement;

/// The TPC-H schema (specification 1.4), with its primary keys.
pub const SCHEMA: &str = "
CREATE TABLE region (r_regionkey INTEGER PRIMARY KEY, r_name CHAR(25) NOT NULL, r_comment VARCHAR(152));
CREATE TABLE nation (n_nationkey INTEGER PRIMARY KEY, n_name CHAR(25) NOT NULL, n_regionkey INTEGER NOT NULL,
  n_comment VARCHAR(152));
CREATE TABLE part (p_partkey INTEGER PRIMARY KEY, p_name VARCHAR(55) NOT NULL, p_mfgr CHAR(25) NOT NULL,
  p_brand CHAR(10) NOT NULL, p_type VARCHAR(25) NOT NULL, p_size INTEGER NOT NULL, p_container CHAR(10) NOT NULL,
  p_retailprice DECIMAL(15,2) NOT NULL, p_comment VARCHAR(23) NOT NULL);
CREATE TABLE supplier (s_suppkey INTEGER PRIMARY KEY, s_name CHAR(25) NOT NULL, s_address VARCHAR(40) NOT NULL,
  s_nationkey INTEGER NOT NULL, s_phone CHAR(15) NOT NULL, s_acctbal DECIMAL(15,2) NOT NULL,
  s_comment VARCHAR(101) NOT NULL);
CREATE TABLE partsupp (ps_partkey INTEGER NOT NULL, ps_suppkey INTEGER NOT NULL, ps_availqty INTEGER NOT NULL,
  ps_supplycost DECIMAL(15,2) NOT NULL, ps_comment VARCHAR(199) NOT NULL, PRIMARY KEY (ps_partkey, ps_suppkey));
CREATE TABLE customer (c_custkey INTEGER PRIMARY KEY, c_name VARCHAR(25) NOT NULL, c_address VARCHAR(40) NOT NULL,
  c_nationkey INTEGER NOT NULL, c_phone CHAR(15) NOT NULL, c_acctbal DECIMAL(15,2) NOT NULL,
  c_mktsegment CHAR(10) NOT NULL, c_comment VARCHAR(117) NOT NULL);
CREATE TABLE orders (o_orderkey INTEGER PRIMARY KEY, o_custkey INTEGER NOT NULL, o_orderstatus CHAR(1) NOT NULL,
  o_totalprice DECIMAL(15,2) NOT NULL, o_orderdate DATE NOT NULL, o_orderpriority CHAR(15) NOT NULL,
  o_clerk CHAR(15) NOT NULL, o_shippriority INTEGER NOT NULL, o_comment VARCHAR(79) NOT NULL);
CREATE TABLE lineitem (l_orderkey INTEGER NOT NULL, l_partkey INTEGER NOT NULL, l_suppkey INTEGER NOT NULL,
  l_linenumber INTEGER NOT NULL, l_quantity DECIMAL(15,2) NOT NULL, l_extendedprice DECIMAL(15,2) NOT NULL,
  l_discount DECIMAL(15,2) NOT NULL, l_tax DECIMAL(15,2) NOT NULL, l_returnflag CHAR(1) NOT NULL,
  l_linestatus CHAR(1) NOT NULL, l_shipdate DATE NOT NULL, l_commitdate DATE NOT NULL, l_receiptdate DATE NOT NULL,
  l_shipinstruct CHAR(25) NOT NULL, l_shipmode CHAR(10) NOT NULL, l_comment VARCHAR(44) NOT NULL,
  PRIMARY KEY (l_orderkey, l_linenumber));
CREATE INDEX lineitem_part_supp ON lineitem (l_partkey, l_suppkey);
CREATE INDEX orders_customer ON orders (o_custkey);
";

/// The tables, in load order.
pub const TABLES: [&str; 8] = ["region", "nation", "part", "supplier", "partsupp", "customer", "orders", "lineitem"];

/// The 22 queries with the specification's validation parameters.
pub const QUERIES: [(&str, &str); 22] = [
    (
        "q01",
        "select l_returnflag, l_linestatus, sum(l_quantity) as sum_qty, sum(l_extendedprice) as sum_base_price,
       sum(l_extendedprice * (1 - l_discount)) as sum_disc_price,
       sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) as sum_charge, avg(l_quantity) as avg_qty,
       avg(l_extendedprice) as avg_price, avg(l_discount) as avg_disc, count(*) as count_order
from lineitem
where l_shipdate <= '1998-09-02'
group by l_returnflag, l_linestatus
order by l_returnflag, l_linestatus",
    ),
    (
        "q02",
        "select s_acctbal, s_name, n_name, p_partkey, p_mfgr, s_address, s_phone, s_comment
from part, supplier, partsupp, nation, region
where p_partkey = ps_partkey and s_suppkey = ps_suppkey and p_size = 15 and p_type like '%BRASS'
  and s_nationkey = n_nationkey and n_regionkey = r_regionkey and r_name = 'EUROPE'
  and ps_supplycost = (
    select min(ps_supplycost) from partsupp, supplier, nation, region
    where p_partkey = ps_partkey and s_suppkey = ps_suppkey and s_nationkey = n_nationkey
      and n_regionkey = r_regionkey and r_name = 'EUROPE')
order by s_acctbal desc, n_name, s_name, p_partkey
limit 100",
    ),
    (
        "q03",
        "select l_orderkey, sum(l_extendedprice * (1 - l_discount)) as revenue, o_orderdate, o_shippriority
from customer, orders, lineitem
where c_mktsegment = 'BUILDING' and c_custkey = o_custkey and l_orderkey = o_orderkey
  and o_orderdate < '1995-03-15' and l_shipdate > '1995-03-15'
group by l_orderkey, o_orderdate, o_shippriority
order by revenue desc, o_orderdate
limit 10",
    ),
    (
        "q04",
        "select o_orderpriority, count(*) as order_count
from orders
where o_orderdate >= '1993-07-01' and o_orderdate < '1993-10-01'
  and exists (select * from lineitem where l_orderkey = o_orderkey and l_commitdate < l_receiptdate)
group by o_orderpriority
order by o_orderpriority",
    ),
    (
        "q05",
        "select n_name, sum(l_extendedprice * (1 - l_discount)) as revenue
from customer, orders, lineitem, supplier, nation, region
where c_custkey = o_custkey and l_orderkey = o_orderkey and l_suppkey = s_suppkey and c_nationkey = s_nationkey
  and s_nationkey = n_nationkey and n_regionkey = r_regionkey and r_name = 'ASIA'
  and o_orderdate >= '1994-01-01' and o_orderdate < '1995-01-01'
group by n_name
order by revenue desc",
    ),
    (
        "q06",
        "select sum(l_extendedprice * l_discount) as revenue
from lineitem
where l_shipdate >= '1994-01-01' and l_shipdate < '1995-01-01'
  and l_discount between 0.06 - 0.01 and 0.06 + 0.01 and l_quantity < 24",
    ),
    (
        "q07",
        "select supp_nation, cust_nation, l_year, sum(volume) as revenue
from (
  select n1.n_name as supp_nation, n2.n_name as cust_nation, strftime('%Y', l_shipdate) as l_year,
         l_extendedprice * (1 - l_discount) as volume
  from supplier, lineitem, orders, customer, nation n1, nation n2
  where s_suppkey = l_suppkey and o_orderkey = l_orderkey and c_custkey = o_custkey
    and s_nationkey = n1.n_nationkey and c_nationkey = n2.n_nationkey
    and ((n1.n_name = 'FRANCE' and n2.n_name = 'GERMANY') or (n1.n_name = 'GERMANY' and n2.n_name = 'FRANCE'))
    and l_shipdate between '1995-01-01' and '1996-12-31') as shipping
group by supp_nation, cust_nation, l_year
order by supp_nation, cust_nation, l_year",
    ),
    (
        "q08",
        "select o_year, sum(case when nation = 'BRAZIL' then volume else 0 end) / sum(volume) as mkt_share
from (
  select strftime('%Y', o_orderdate) as o_year, l_extendedprice * (1 - l_discount) as volume, n2.n_name as nation
  from part, supplier, lineitem, orders, customer, nation n1, nation n2, region
  where p_partkey = l_partkey and s_suppkey = l_suppkey and l_orderkey = o_orderkey and o_custkey = c_custkey
    and c_nationkey = n1.n_nationkey and n1.n_regionkey = r_regionkey and r_name = 'AMERICA'
    and s_nationkey = n2.n_nationkey and o_orderdate between '1995-01-01' and '1996-12-31'
    and p_type = 'ECONOMY ANODIZED STEEL') as all_nations
group by o_year
order by o_year",
    ),
    (
        "q09",
        "select nation, o_year, sum(amount) as sum_profit
from (
  select n_name as nation, strftime('%Y', o_orderdate) as o_year,
         l_extendedprice * (1 - l_discount) - ps_supplycost * l_quantity as amount
  from part, supplier, lineitem, partsupp, orders, nation
  where s_suppkey = l_suppkey and ps_suppkey = l_suppkey and ps_partkey = l_partkey and p_partkey = l_partkey
    and o_orderkey = l_orderkey and s_nationkey = n_nationkey and p_name like '%green%') as profit
group by nation, o_year
order by nation, o_year desc",
    ),
    (
        "q10",
        "select c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) as revenue, c_acctbal, n_name, c_address,
       c_phone, c_comment
from customer, orders, lineitem, nation
where c_custkey = o_custkey and l_orderkey = o_orderkey and o_orderdate >= '1993-10-01'
  and o_orderdate < '1994-01-01' and l_returnflag = 'R' and c_nationkey = n_nationkey
group by c_custkey, c_name, c_acctbal, c_phone, n_name, c_address, c_comment
order by revenue desc
limit 20",
    ),
    (
        "q11",
        "select ps_partkey, sum(ps_supplycost * ps_availqty) as value
from partsupp, supplier, nation
where ps_suppkey = s_suppkey and s_nationkey = n_nationkey and n_name = 'GERMANY'
group by ps_partkey
having sum(ps_supplycost * ps_availqty) > (
  select sum(ps_supplycost * ps_availqty) * 0.0001
  from partsupp, supplier, nation
  where ps_suppkey = s_suppkey and s_nationkey = n_nationkey and n_name = 'GERMANY')
order by value desc",
    ),
    (
        "q12",
        "select l_shipmode,
       sum(case when o_orderpriority = '1-URGENT' or o_orderpriority = '2-HIGH' then 1 else 0 end) as high_line_count,
       sum(case when o_orderpriority <> '1-URGENT' and o_orderpriority <> '2-HIGH' then 1 else 0 end) as low_line_count
from orders, lineitem
where o_orderkey = l_orderkey and l_shipmode in ('MAIL', 'SHIP') and l_commitdate < l_receiptdate
  and l_shipdate < l_commitdate and l_receiptdate >= '1994-01-01' and l_receiptdate < '1995-01-01'
group by l_shipmode
order by l_shipmode",
    ),
    (
        "q13",
        "select c_count, count(*) as custdist
from (
  select c_custkey, count(o_orderkey) as c_count
  from customer left outer join orders on c_custkey = o_custkey and o_comment not like '%special%requests%'
  group by c_custkey) as c_orders
group by c_count
order by custdist desc, c_count desc",
    ),
    (
        "q14",
        "select 100.00 * sum(case when p_type like 'PROMO%' then l_extendedprice * (1 - l_discount) else 0 end)
       / sum(l_extendedprice * (1 - l_discount)) as promo_revenue
from lineitem, part
where l_partkey = p_partkey and l_shipdate >= '1995-09-01' and l_shipdate < '1995-10-01'",
    ),
    (
        "q15",
        "with revenue0 (supplier_no, total_revenue) as (
  select l_suppkey, sum(l_extendedprice * (1 - l_discount))
  from lineitem
  where l_shipdate >= '1996-01-01' and l_shipdate < '1996-04-01'
  group by l_suppkey)
select s_suppkey, s_name, s_address, s_phone, total_revenue
from supplier, revenue0
where s_suppkey = supplier_no and total_revenue = (select max(total_revenue) from revenue0)
order by s_suppkey",
    ),
    (
        "q16",
        "select p_brand, p_type, p_size, count(distinct ps_suppkey) as supplier_cnt
from partsupp, part
where p_partkey = ps_partkey and p_brand <> 'Brand#45' and p_type not like 'MEDIUM POLISHED%'
  and p_size in (49, 14, 23, 45, 19, 3, 36, 9)
  and ps_suppkey not in (select s_suppkey from supplier where s_comment like '%Customer%Complaints%')
group by p_brand, p_type, p_size
order by supplier_cnt desc, p_brand, p_type, p_size",
    ),
    (
        "q17",
        "select sum(l_extendedprice) / 7.0 as avg_yearly
from lineitem, part
where p_partkey = l_partkey and p_brand = 'Brand#23' and p_container = 'MED BOX'
  and l_quantity < (select 0.2 * avg(l_quantity) from lineitem where l_partkey = p_partkey)",
    ),
    (
        "q18",
        "select c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice, sum(l_quantity)
from customer, orders, lineitem
where o_orderkey in (select l_orderkey from lineitem group by l_orderkey having sum(l_quantity) > 300)
  and c_custkey = o_custkey and o_orderkey = l_orderkey
group by c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice
order by o_totalprice desc, o_orderdate
limit 100",
    ),
    (
        "q19",
        "select sum(l_extendedprice * (1 - l_discount)) as revenue
from lineitem, part
where (p_partkey = l_partkey and p_brand = 'Brand#12' and p_container in ('SM CASE', 'SM BOX', 'SM PACK', 'SM PKG')
       and l_quantity >= 1 and l_quantity <= 1 + 10 and p_size between 1 and 5
       and l_shipmode in ('AIR', 'AIR REG') and l_shipinstruct = 'DELIVER IN PERSON')
   or (p_partkey = l_partkey and p_brand = 'Brand#23' and p_container in ('MED BAG', 'MED BOX', 'MED PKG', 'MED PACK')
       and l_quantity >= 10 and l_quantity <= 10 + 10 and p_size between 1 and 10
       and l_shipmode in ('AIR', 'AIR REG') and l_shipinstruct = 'DELIVER IN PERSON')
   or (p_partkey = l_partkey and p_brand = 'Brand#34' and p_container in ('LG CASE', 'LG BOX', 'LG PACK', 'LG PKG')
       and l_quantity >= 20 and l_quantity <= 20 + 10 and p_size between 1 and 15
       and l_shipmode in ('AIR', 'AIR REG') and l_shipinstruct = 'DELIVER IN PERSON')",
    ),
    (
        "q20",
        "select s_name, s_address
from supplier, nation
where s_suppkey in (
    select ps_suppkey from partsupp
    where ps_partkey in (select p_partkey from part where p_name like 'forest%')
      and ps_availqty > (
        select 0.5 * sum(l_quantity) from lineitem
        where l_partkey = ps_partkey and l_suppkey = ps_suppkey
          and l_shipdate >= '1994-01-01' and l_shipdate < '1995-01-01'))
  and s_nationkey = n_nationkey and n_name = 'CANADA'
order by s_name",
    ),
    (
        "q21",
        "select s_name, count(*) as numwait
from supplier, lineitem l1, orders, nation
where s_suppkey = l1.l_suppkey and o_orderkey = l1.l_orderkey and o_orderstatus = 'F'
  and l1.l_receiptdate > l1.l_commitdate
  and exists (select * from lineitem l2 where l2.l_orderkey = l1.l_orderkey and l2.l_suppkey <> l1.l_suppkey)
  and not exists (
    select * from lineitem l3
    where l3.l_orderkey = l1.l_orderkey and l3.l_suppkey <> l1.l_suppkey and l3.l_receiptdate > l3.l_commitdate)
  and s_nationkey = n_nationkey and n_name = 'SAUDI ARABIA'
group by s_name
order by numwait desc, s_name
limit 100",
    ),
    (
        "q22",
        "select cntrycode, count(*) as numcust, sum(c_acctbal) as totacctbal
from (
  select substr(c_phone, 1, 2) as cntrycode, c_acctbal
  from customer
  where substr(c_phone, 1, 2) in ('13', '31', '23', '29', '30', '18', '17')
    and c_acctbal > (
      select avg(c_acctbal) from customer
      where c_acctbal > 0.00 and substr(c_phone, 1, 2) in ('13', '31', '23', '29', '30', '18', '17'))
    and not exists (select * from orders where o_custkey = c_custkey)) as custsale
group by cntrycode
order by cntrycode",
    ),
];

/// `CREATE MATERIALIZED VIEW qNN AS <query>;` for each query.
pub fn view(name: &str, query: &str) -> String {
    format!("CREATE MATERIALIZED VIEW {name} AS\n{query};\n")
}

/// All 22 queries as one views file.
pub fn views() -> String {
    QUERIES.iter().map(|(name, query)| view(name, query)).collect()
}

/// Creates the schema and loads the data of `scale` (1.0 is about 1 GB;
/// 0.01 is 60k line items).
pub fn load(connection: &Connection, scale: f64) -> rusqlite::Result<()> {
    connection.execute_batch(SCHEMA)?;
    connection.execute_batch("BEGIN")?;
    for table in TABLES {
        insert_lines(connection, table, lines(table, scale))?;
    }
    connection.execute_batch("COMMIT")
}

/// The rows of `table` at `scale` in TPC-H's TBL format (`a|b|c|`), as
/// dbgen writes them.
pub fn lines(table: &str, scale: f64) -> Box<dyn Iterator<Item = String>> {
    fn all<T: ToString>(rows: impl Iterator<Item = T> + 'static) -> Box<dyn Iterator<Item = String>> {
        Box::new(rows.map(|r| r.to_string()))
    }
    match table {
        "region" => all(RegionGenerator::new(scale, 1, 1).iter()),
        "nation" => all(NationGenerator::new(scale, 1, 1).iter()),
        "part" => all(PartGenerator::new(scale, 1, 1).iter()),
        "supplier" => all(SupplierGenerator::new(scale, 1, 1).iter()),
        "partsupp" => all(PartSuppGenerator::new(scale, 1, 1).iter()),
        "customer" => all(CustomerGenerator::new(scale, 1, 1).iter()),
        "orders" => all(OrderGenerator::new(scale, 1, 1).iter()),
        "lineitem" => all(LineItemGenerator::new(scale, 1, 1).iter()),
        other => panic!("{other} is not a TPC-H table"),
    }
}

/// Inserts rows in TBL format, each field as text: the columns' affinities
/// store them as SQLite would from any client.
fn insert_lines(connection: &Connection, table: &str, rows: impl Iterator<Item = String>) -> rusqlite::Result<()> {
    let mut statement = None;
    for line in rows {
        let fields: Vec<&str> = line.strip_suffix('|').unwrap_or(&line).split('|').collect();
        if statement.is_none() {
            let marks = vec!["?"; fields.len()].join(", ");
            statement = Some(connection.prepare(&format!("INSERT INTO {table} VALUES ({marks})"))?);
        }
        if let Some(s) = statement.as_mut() {
            s.execute(rusqlite::params_from_iter(fields))?;
        }
    }
    Ok(())
}

/// A query in PostgreSQL's syntax, as the specification writes it there:
/// typed date literals, `extract(year from …)`, `substring(… from … for …)`,
/// Q13's column list after the derived table's alias.
pub fn postgres_query(query: &str) -> String {
    let mut out = String::with_capacity(query.len() + 64);
    let mut rest = query;
    while let Some(at) = rest.find('\'') {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let date = from.len() >= 12
            && from.as_bytes()[11] == b'\''
            && from[1..11]
                .bytes()
                .enumerate()
                .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        let end = 1 + from[1..].find('\'').map_or(from.len() - 1, |e| e + 1);
        if date {
            out.push_str("date ");
        }
        out.push_str(&from[..end]);
        rest = &from[end..];
    }
    out.push_str(rest);
    let out = out
        .replace("substr(c_phone, 1, 2)", "substring(c_phone from 1 for 2)")
        .replace("count(o_orderkey) as c_count", "count(o_orderkey)")
        .replace("group by c_custkey) as c_orders", "group by c_custkey) as c_orders (c_custkey, c_count)");
    let mut rewritten = String::new();
    let mut rest = out.as_str();
    while let Some(at) = rest.find("strftime('%Y', ") {
        rewritten.push_str(&rest[..at]);
        let after = &rest[at + "strftime('%Y', ".len()..];
        let close = after.find(')').expect("strftime(…) closes");
        rewritten.push_str(&format!("extract(year from {})", &after[..close]));
        rest = &after[close + 1..];
    }
    rewritten.push_str(rest);
    rewritten
}

/// A deterministic random stream (SplitMix64): the same seed writes the same
/// rounds.
#[derive(Debug, Clone)]
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Self {
        Random(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi - lo + 1).unwrap_or(1);
        lo + i64::try_from(self.next_u64() % span).unwrap_or(0)
    }

    pub fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        choices[usize::try_from(self.range(0, choices.len() as i64 - 1)).unwrap_or(0)]
    }
}

const PRIORITIES: &[&str] = &["1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"];
const SHIP_MODES: &[&str] = &["REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"];
const INSTRUCTIONS: &[&str] = &["DELIVER IN PERSON", "COLLECT COD", "NONE", "TAKE BACK RETURN"];
const SEGMENTS: &[&str] = &["AUTOMOBILE", "BUILDING", "FURNITURE", "MACHINERY", "HOUSEHOLD"];
const CONTAINERS: &[&str] = &["SM CASE", "SM BOX", "MED BOX", "MED BAG", "LG CASE", "LG BOX", "JUMBO PKG", "WRAP CAN"];
const BRANDS: &[&str] = &["Brand#12", "Brand#23", "Brand#34", "Brand#45", "Brand#11"];
const TYPES: &[&str] = &[
    "PROMO BRUSHED BRASS",
    "ECONOMY ANODIZED STEEL",
    "MEDIUM POLISHED TIN",
    "STANDARD PLATED BRASS",
    "SMALL BURNISHED COPPER",
];
const COMMENTS: &[&str] = &["quick deposits", "special requests sleep", "Customer slyly Complaints", "furiously final"];

/// Writes refresh rounds against a loaded database: RF1 inserts new orders
/// with 1–7 line items each, RF2 deletes as many old orders with theirs, and
/// updates change the columns the 22 queries read (dates, flags, amounts,
/// names, join keys).
#[derive(Debug)]
pub struct Refresh {
    next_order: i64,
    /// Orders not yet deleted by RF2, lowest key first.
    next_deleted: i64,
    parts: i64,
    suppliers: i64,
    customers: i64,
    orders_per_round: i64,
}

impl Refresh {
    /// Reads the key ranges of a database that [`load`] filled; `value`
    /// runs a query returning one integer (on SQLite or PostgreSQL).
    pub fn new<E>(mut value: impl FnMut(&str) -> Result<i64, E>, orders_per_round: i64) -> Result<Self, E> {
        Ok(Refresh {
            next_order: value("SELECT max(o_orderkey) FROM orders")? + 1,
            next_deleted: value("SELECT min(o_orderkey) FROM orders")?,
            parts: value("SELECT max(p_partkey) FROM part")?,
            suppliers: value("SELECT max(s_suppkey) FROM supplier")?,
            customers: value("SELECT max(c_custkey) FROM customer")?,
            orders_per_round,
        })
    }

    /// One round: RF1, RF2 and `updates` updates, shuffled into one list.
    pub fn round(&mut self, random: &mut Random, updates: usize) -> Vec<Statement> {
        let mut out = Vec::new();
        for _ in 0..self.orders_per_round {
            self.new_order(random, &mut out);
        }
        for _ in 0..self.orders_per_round {
            let key = self.next_deleted;
            self.next_deleted += 1;
            out.push(Statement::delete("lineitem", format!("l_orderkey = {key}")));
            out.push(Statement::delete("orders", format!("o_orderkey = {key}")));
        }
        for _ in 0..updates {
            out.push(self.update(random));
        }
        out
    }

    fn date(random: &mut Random) -> String {
        format!("'{}-{:02}-{:02}'", random.range(1992, 1998), random.range(1, 12), random.range(1, 28))
    }

    fn new_order(&mut self, random: &mut Random, out: &mut Vec<Statement>) {
        let key = self.next_order;
        self.next_order += 1;
        let date = Self::date(random);
        let status = random.pick(&["'F'", "'O'", "'P'"]);
        out.push(Statement::insert(
            "orders",
            &[
                key.to_string(),
                random.range(1, self.customers).to_string(),
                status.to_string(),
                format!("{}.{:02}", random.range(1000, 400_000), random.range(0, 99)),
                date.clone(),
                format!("'{}'", random.pick(PRIORITIES)),
                "'Clerk#000000001'".to_string(),
                "0".to_string(),
                format!("'{}'", random.pick(COMMENTS)),
            ],
        ));
        for line in 1..=random.range(1, 7) {
            let quantity = random.range(1, 50);
            out.push(Statement::insert(
                "lineitem",
                &[
                    key.to_string(),
                    random.range(1, self.parts).to_string(),
                    random.range(1, self.suppliers).to_string(),
                    line.to_string(),
                    quantity.to_string(),
                    format!("{}.{:02}", quantity * random.range(900, 2000), random.range(0, 99)),
                    format!("0.0{}", random.range(0, 9)),
                    format!("0.0{}", random.range(0, 8)),
                    format!("'{}'", random.pick(&["R", "A", "N"])),
                    format!("'{}'", random.pick(&["O", "F"])),
                    Self::date(random),
                    Self::date(random),
                    Self::date(random),
                    format!("'{}'", random.pick(INSTRUCTIONS)),
                    format!("'{}'", random.pick(SHIP_MODES)),
                    "'regular courts'".to_string(),
                ],
            ));
        }
    }

    /// An update of one column the queries read, of a random row.
    fn update(&self, random: &mut Random) -> Statement {
        let order = random.range(self.next_deleted, self.next_order - 1);
        let line = format!("l_orderkey = {order} AND l_linenumber = {}", random.range(1, 7));
        let part = format!("p_partkey = {}", random.range(1, self.parts));
        let supplier = format!("s_suppkey = {}", random.range(1, self.suppliers));
        let customer = format!("c_custkey = {}", random.range(1, self.customers));
        let partsupp =
            format!("ps_partkey = {} AND ps_suppkey % 4 = {}", random.range(1, self.parts), random.range(0, 3));
        match random.range(0, 21) {
            0 => Statement::update("lineitem", format!("l_quantity = {}", random.range(1, 50)), line),
            1 => Statement::update("lineitem", format!("l_discount = 0.0{}", random.range(0, 9)), line),
            2 => Statement::update("lineitem", format!("l_shipdate = {}", Self::date(random)), line),
            3 => Statement::update("lineitem", format!("l_receiptdate = {}", Self::date(random)), line),
            4 => Statement::update("lineitem", format!("l_commitdate = {}", Self::date(random)), line),
            5 => Statement::update("lineitem", format!("l_returnflag = '{}'", random.pick(&["R", "A", "N"])), line),
            6 => Statement::update("lineitem", format!("l_suppkey = {}", random.range(1, self.suppliers)), line),
            7 => Statement::update("lineitem", format!("l_shipmode = '{}'", random.pick(SHIP_MODES)), line),
            8 => Statement::update(
                "orders",
                format!("o_orderdate = {}", Self::date(random)),
                format!("o_orderkey = {order}"),
            ),
            9 => Statement::update(
                "orders",
                format!("o_custkey = {}", random.range(1, self.customers)),
                format!("o_orderkey = {order}"),
            ),
            10 => Statement::update(
                "orders",
                format!("o_orderpriority = '{}'", random.pick(PRIORITIES)),
                format!("o_orderkey = {order}"),
            ),
            11 => Statement::update(
                "orders",
                format!("o_orderstatus = '{}', o_comment = '{}'", random.pick(&["F", "O"]), random.pick(COMMENTS)),
                format!("o_orderkey = {order}"),
            ),
            12 => Statement::update("customer", format!("c_mktsegment = '{}'", random.pick(SEGMENTS)), customer),
            13 => Statement::update("customer", format!("c_nationkey = {}", random.range(0, 24)), customer),
            14 => Statement::update(
                "customer",
                format!(
                    "c_acctbal = {}.{:02}, c_phone = '{}-555'",
                    random.range(-999, 9999),
                    random.range(0, 99),
                    random.range(10, 34)
                ),
                customer,
            ),
            15 => Statement::update(
                "part",
                format!("p_type = '{}', p_brand = '{}'", random.pick(TYPES), random.pick(BRANDS)),
                part,
            ),
            16 => Statement::update(
                "part",
                format!("p_container = '{}', p_size = {}", random.pick(CONTAINERS), random.range(1, 50)),
                part,
            ),
            17 => {
                Statement::update("part", format!("p_name = '{} green forest'", random.pick(&["forest", "dark"])), part)
            }
            18 => Statement::update("supplier", format!("s_nationkey = {}", random.range(0, 24)), supplier),
            19 => Statement::update("supplier", format!("s_comment = '{}'", random.pick(COMMENTS)), supplier),
            20 => Statement::update(
                "partsupp",
                format!("ps_supplycost = {}.{:02}", random.range(1, 1000), random.range(0, 99)),
                partsupp,
            ),
            _ => Statement::update("partsupp", format!("ps_availqty = {}", random.range(1, 9999)), partsupp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_queries_type_dates_and_use_its_functions() {
        let q07 = postgres_query(QUERIES[6].1);
        assert!(q07.contains("extract(year from l_shipdate) as l_year"), "{q07}");
        assert!(q07.contains("between date '1995-01-01' and date '1996-12-31'"), "{q07}");
        assert!(q07.contains("n1.n_name = 'FRANCE'"), "{q07}");
        let q22 = postgres_query(QUERIES[21].1);
        assert!(q22.contains("substring(c_phone from 1 for 2) in ('13',"), "{q22}");
        assert!(!q22.contains("substr("), "{q22}");
        let q13 = postgres_query(QUERIES[12].1);
        assert!(q13.contains("count(o_orderkey)\n") && q13.contains("as c_orders (c_custkey, c_count)"), "{q13}");
        assert_eq!(postgres_query("x like '%BRASS' and d < '1995-03-15'"), "x like '%BRASS' and d < date '1995-03-15'");
    }
}
