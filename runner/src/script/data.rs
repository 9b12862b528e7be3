//! Data sets: rows loaded once at start (inline or CSV) and the row each iteration uses.
//! Picking a row is one atomic add (sequential) or one RNG call (random); `unique` rows are
//! handed out once per user from a free list, off the hot path.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use stampede_api::scenario::{DataSource, Pick};

#[derive(Debug)]
pub struct DataSet {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub pick: Pick,
}

impl DataSet {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    pub fn value(&self, row: usize, col: usize) -> &str {
        &self.rows[row][col]
    }

    /// Builds the set from its source; CSV paths are relative to `base`.
    pub fn load(src: &DataSource, base: &Path) -> Result<DataSet, String> {
        let (columns, rows) = match (&src.rows, &src.csv) {
            (Some(rows), _) => {
                let columns: Vec<String> = rows
                    .first()
                    .map(|r| r.keys().cloned().collect())
                    .unwrap_or_default();
                let rows = rows.iter().map(|r| r.values().cloned().collect()).collect();
                (columns, rows)
            }
            (None, Some(csv)) => read_csv(&base.join(&csv.file))?,
            (None, None) => return Err("no rows and no csv".into()),
        };
        if rows.is_empty() {
            return Err("the data set has no rows".into());
        }
        Ok(DataSet {
            name: src.name.clone(),
            columns,
            rows,
            pick: src.pick,
        })
    }
}

/// Columns and row count of a CSV file (for validation).
pub fn csv_shape(path: &Path) -> Result<stampede_api::DataShape, String> {
    let (columns, rows) = read_csv(path)?;
    Ok(stampede_api::DataShape {
        columns,
        rows: rows.len(),
    })
}

fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut r =
        csv::Reader::from_path(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let columns: Vec<String> = r
        .headers()
        .map_err(|e| format!("cannot read the header line of {}: {e}", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| format!("{} line {}: {e}", path.display(), i + 2))?;
        rows.push(rec.iter().map(str::to_string).collect());
    }
    Ok((columns, rows))
}

/// Shared row cursors for every data set of a test.
#[derive(Debug)]
pub struct Cursors {
    sequential: Vec<AtomicUsize>,
    unique_free: Vec<Mutex<Vec<usize>>>,
    /// This runner's part of the rows, see `partitioned`.
    part: usize,
    parts: usize,
}

impl Cursors {
    pub fn new(sets: &[DataSet]) -> Cursors {
        Cursors::partitioned(sets, 0, 1)
    }

    /// Cursors of runner `part` of `parts`: it hands out only the rows numbered `part` mod
    /// `parts`, so `unique` rows are never held on two runners at once (each runner counted
    /// from row 0, and two runners' first users shared a row) and `sequential` runners
    /// together walk every row in turn. A runner whose part runs out counts
    /// `data_exhausted` for each user beyond it, as one process does when users outnumber
    /// rows.
    pub fn partitioned(sets: &[DataSet], part: usize, parts: usize) -> Cursors {
        let parts = parts.max(1);
        let part = part % parts;
        Cursors {
            sequential: sets.iter().map(|_| AtomicUsize::new(0)).collect(),
            unique_free: sets
                .iter()
                .map(|s| {
                    let free = if s.pick == Pick::Unique {
                        (0..s.rows.len())
                            .rev()
                            .filter(|r| r % parts == part)
                            .collect()
                    } else {
                        Vec::new()
                    };
                    Mutex::new(free)
                })
                .collect(),
            part,
            parts,
        }
    }

    /// Rows a new user keeps for its lifetime (`unique` sets); `None` when a set ran out.
    pub fn take_unique(&self, sets: &[DataSet]) -> Option<Vec<Option<usize>>> {
        let mut taken = Vec::with_capacity(sets.len());
        for (i, s) in sets.iter().enumerate() {
            if s.pick != Pick::Unique {
                taken.push(None);
                continue;
            }
            let row = self.unique_free[i]
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            match row {
                Some(r) => taken.push(Some(r)),
                None => {
                    self.give_back(&taken);
                    return None;
                }
            }
        }
        Some(taken)
    }

    /// Returns a retired user's unique rows.
    pub fn give_back(&self, taken: &[Option<usize>]) {
        for (i, r) in taken.iter().enumerate() {
            if let Some(r) = r {
                self.unique_free[i]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(*r);
            }
        }
    }

    /// Chooses this iteration's row of every set into `rows`.
    pub fn pick(&self, sets: &[DataSet], unique: &[Option<usize>], rows: &mut [usize]) {
        for (i, s) in sets.iter().enumerate() {
            rows[i] = match s.pick {
                Pick::Sequential => {
                    let n = self.sequential[i].fetch_add(1, Ordering::Relaxed);
                    n.wrapping_mul(self.parts).wrapping_add(self.part) % s.rows.len()
                }
                Pick::Random => fastrand::usize(..s.rows.len()),
                Pick::Unique => unique[i].unwrap_or(0),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pick: Pick, n: usize) -> DataSet {
        DataSet {
            name: "d".into(),
            columns: vec!["c".into()],
            rows: (0..n).map(|i| vec![i.to_string()]).collect(),
            pick,
        }
    }

    #[test]
    fn sequential_wraps_and_unique_never_repeats_until_returned() {
        let sets = vec![set(Pick::Sequential, 3), set(Pick::Unique, 2)];
        let c = Cursors::new(&sets);
        let a = c.take_unique(&sets).unwrap();
        let b = c.take_unique(&sets).unwrap();
        assert_ne!(a[1], b[1]);
        assert!(c.take_unique(&sets).is_none(), "two rows, two users");
        c.give_back(&a);
        assert_eq!(c.take_unique(&sets).unwrap()[1], a[1]);
        let mut rows = [0, 0];
        let seen: Vec<usize> = (0..4)
            .map(|_| {
                c.pick(&sets, &b, &mut rows);
                rows[0]
            })
            .collect();
        assert_eq!(seen, vec![0, 1, 2, 0]);
        assert_eq!(rows[1], b[1].unwrap());
    }

    #[test]
    fn runners_hold_disjoint_unique_rows_and_share_the_sequential_walk() {
        let sets = vec![set(Pick::Unique, 5), set(Pick::Sequential, 4)];
        let runners: Vec<Cursors> = (0..2).map(|p| Cursors::partitioned(&sets, p, 2)).collect();
        let mut held: Vec<Vec<usize>> = vec![Vec::new(); 2];
        for (c, held) in runners.iter().zip(&mut held) {
            while let Some(t) = c.take_unique(&sets) {
                held.push(t[0].unwrap());
            }
        }
        held.iter_mut().for_each(|h| h.sort());
        assert_eq!(
            held,
            vec![vec![0, 2, 4], vec![1, 3]],
            "each row on one runner"
        );
        let mut rows = [0, 0];
        let mut walk = Vec::new();
        for _ in 0..2 {
            for c in &runners {
                c.pick(&sets, &[None, None], &mut rows);
                walk.push(rows[1]);
            }
        }
        assert_eq!(
            walk,
            vec![0, 1, 2, 3],
            "the runners take turns over the rows"
        );
    }
}
