//! The little dense linear algebra a student's first weights need, in f64: products, row and
//! column picks, and the principal directions of a set of rows (cyclic Jacobi on their
//! second-moment matrix).

use std::ops::Range;

/// A row-major matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Mat {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `rows × cols` values.
    pub data: Vec<f64>,
}

impl Mat {
    /// A zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Mat {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    fn at(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }

    /// `self · bᵀ` (`b` is `[n, cols]`): `[rows, n]`.
    pub fn matmul_t(&self, b: &Mat) -> Mat {
        assert_eq!(self.cols, b.cols);
        let mut out = Mat::zeros(self.rows, b.rows);
        for i in 0..self.rows {
            let a = &self.data[i * self.cols..(i + 1) * self.cols];
            for j in 0..b.rows {
                let bj = &b.data[j * b.cols..(j + 1) * b.cols];
                out.data[i * b.rows + j] = a.iter().zip(bj).map(|(x, y)| x * y).sum();
            }
        }
        out
    }

    /// `self · b`.
    pub fn matmul(&self, b: &Mat) -> Mat {
        self.matmul_t(&b.transpose())
    }

    /// The transpose.
    pub fn transpose(&self) -> Mat {
        let mut out = Mat::zeros(self.cols, self.rows);
        for r in 0..self.rows {
            for c in 0..self.cols {
                out.data[c * self.rows + r] = self.at(r, c);
            }
        }
        out
    }

    /// `self · v`.
    pub fn matvec(&self, v: &[f64]) -> Vec<f64> {
        self.data
            .chunks_exact(self.cols)
            .map(|row| row.iter().zip(v).map(|(a, b)| a * b).sum())
            .collect()
    }

    /// The diagonal of `self · diag(g) · selfᵀ`: an element-wise scale carried into the rows'
    /// basis.
    pub fn diag_conj(&self, g: &[f64]) -> Vec<f64> {
        self.data
            .chunks_exact(self.cols)
            .map(|row| row.iter().zip(g).map(|(p, g)| p * p * g).sum())
            .collect()
    }

    /// The first `k` rows (zero rows past the end).
    pub fn top_rows(&self, k: usize) -> Mat {
        let mut out = Mat::zeros(k, self.cols);
        let n = k.min(self.rows) * self.cols;
        out.data[..n].copy_from_slice(&self.data[..n]);
        out
    }

    /// The rows `idx`, in that order.
    pub fn select_rows(&self, idx: &[usize]) -> Mat {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &r in idx {
            data.extend_from_slice(&self.data[r * self.cols..(r + 1) * self.cols]);
        }
        Mat {
            rows: idx.len(),
            cols: self.cols,
            data,
        }
    }

    /// The columns `idx`, in that order.
    pub fn select_cols(&self, idx: &[usize]) -> Mat {
        let mut data = Vec::with_capacity(idx.len() * self.rows);
        for r in 0..self.rows {
            data.extend(idx.iter().map(|&c| self.at(r, c)));
        }
        Mat {
            rows: self.rows,
            cols: idx.len(),
            data,
        }
    }

    /// The Frobenius norm of rows `r`.
    pub fn rows_norm(&self, r: Range<usize>) -> f64 {
        self.data[r.start * self.cols..r.end * self.cols]
            .iter()
            .map(|x| x * x)
            .sum::<f64>()
            .sqrt()
    }

    /// The Frobenius norm of columns `c`.
    pub fn cols_norm(&self, c: Range<usize>) -> f64 {
        (0..self.rows)
            .flat_map(|r| c.clone().map(move |j| (r, j)))
            .map(|(r, j)| self.at(r, j).powi(2))
            .sum::<f64>()
            .sqrt()
    }
}

/// The `k` directions (rows of the result, `[k, cols]`, orthonormal) along which `x`'s rows
/// have the most energy: the top eigenvectors of `xᵀx / rows`, largest first. Each direction's
/// sign is fixed (its largest element positive) so the result does not depend on rounding.
pub fn principal_directions(x: &Mat, k: usize) -> Mat {
    let rows: Vec<f32> = x.data.iter().map(|&v| v as f32).collect();
    principal_directions_f32(&rows, x.cols, k)
}

/// [`principal_directions`] of the rows of the row-major `data` (`cols` wide), its
/// second-moment matrix summed in f64 over blocks of rows on rayon's threads.
pub fn principal_directions_f32(data: &[f32], cols: usize, k: usize) -> Mat {
    use rayon::prelude::*;
    let n = cols;
    let rows = data.len() / cols.max(1);
    let block = 1024 * cols;
    let sums: Vec<Vec<f64>> = data
        .par_chunks(block)
        .map(|chunk| {
            let mut acc = vec![0.0f64; n * n];
            for row in chunk.chunks_exact(n) {
                for (i, &xi) in row.iter().enumerate() {
                    let xi = xi as f64;
                    let out = &mut acc[i * n..(i + 1) * n];
                    for (o, &xj) in out[i..].iter_mut().zip(&row[i..]) {
                        *o += xi * xj as f64;
                    }
                }
            }
            acc
        })
        .collect();
    let mut a = Mat::zeros(n, n);
    for s in &sums {
        a.data.iter_mut().zip(s).for_each(|(a, s)| *a += s);
    }
    for i in 0..n {
        for j in 0..i {
            a.data[i * n + j] = a.data[j * n + i];
        }
    }
    a.data.iter_mut().for_each(|v| *v /= rows.max(1) as f64);
    let (values, vectors) = jacobi_eigen(a);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| values[j].total_cmp(&values[i]).then(i.cmp(&j)));
    let mut out = Mat::zeros(k.min(n), n);
    for (row, &i) in order.iter().take(k).enumerate() {
        // Column i of `vectors` is the eigenvector.
        let v: Vec<f64> = (0..n).map(|r| vectors.at(r, i)).collect();
        let big = v
            .iter()
            .copied()
            .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
        let sign = if big < 0.0 { -1.0 } else { 1.0 };
        for (c, x) in v.iter().enumerate() {
            out.data[row * n + c] = sign * x;
        }
    }
    out
}

/// Eigenvalues and eigenvectors (columns) of the symmetric `a` by cyclic Jacobi rotations.
fn jacobi_eigen(mut a: Mat) -> (Vec<f64>, Mat) {
    let n = a.rows;
    let mut v = Mat::zeros(n, n);
    (0..n).for_each(|i| v.data[i * n + i] = 1.0);
    let total: f64 = a
        .data
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a.at(i, j).powi(2))
            .sum();
        if off <= total * 1e-24 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a.at(p, q);
                if apq.abs() <= f64::MIN_POSITIVE {
                    continue;
                }
                let theta = (a.at(q, q) - a.at(p, p)) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a.at(k, p), a.at(k, q));
                    a.data[k * n + p] = c * akp - s * akq;
                    a.data[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a.at(p, k), a.at(q, k));
                    a.data[p * n + k] = c * apk - s * aqk;
                    a.data[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v.at(k, p), v.at(k, q));
                    v.data[k * n + p] = c * vkp - s * vkq;
                    v.data[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a.at(i, i)).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_directions_of_a_stretched_cloud() {
        // Points along (1, 1, 0) with a little spread along (1, -1, 0) and none along z.
        let mut data = Vec::new();
        for i in 0..50 {
            let a = (i as f64 - 25.0) / 5.0;
            let b = ((i * 7 % 11) as f64 - 5.0) / 50.0;
            data.extend([a + b, a - b, 0.0]);
        }
        let x = Mat {
            rows: 50,
            cols: 3,
            data,
        };
        let p = principal_directions(&x, 2);
        // Each row is an eigenvector of xᵀx / n, the largest eigenvalue first.
        let mut a = x.transpose().matmul_t(&x.transpose());
        a.data.iter_mut().for_each(|v| *v /= 50.0);
        let mut lambdas = Vec::new();
        for i in 0..2 {
            let v = &p.data[i * 3..(i + 1) * 3];
            let av = a.matvec(v);
            let lambda: f64 = av.iter().zip(v).map(|(x, y)| x * y).sum();
            for (x, y) in av.iter().zip(v) {
                assert!((x - lambda * y).abs() < 1e-5, "{p:?}");
            }
            lambdas.push(lambda);
        }
        assert!(
            lambdas[0] > 100.0 * lambdas[1] && lambdas[1] > 1e-4,
            "{lambdas:?}"
        );
        // Along (1, 1, 0) and (1, -1, 0), to the data's small tilt; signs fixed.
        let s = 0.5f64.sqrt();
        assert!(
            (p.at(0, 0) - s).abs() < 1e-3 && (p.at(0, 1) - s).abs() < 1e-3,
            "{p:?}"
        );
        assert!(
            (p.at(1, 1) - s).abs() < 1e-3 && (p.at(1, 0) + s).abs() < 1e-3,
            "{p:?}"
        );
        // Orthonormal rows.
        let g = p.matmul_t(&p);
        for i in 0..2 {
            for j in 0..2 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((g.at(i, j) - want).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn products_and_picks() {
        let a = Mat {
            rows: 2,
            cols: 3,
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        assert_eq!(a.matmul_t(&a).data, [14.0, 32.0, 32.0, 77.0]);
        assert_eq!(a.select_cols(&[2, 0]).data, [3.0, 1.0, 6.0, 4.0]);
        assert_eq!(a.select_rows(&[1]).data, [4.0, 5.0, 6.0]);
        assert_eq!(a.top_rows(3).data[3..], [4.0, 5.0, 6.0, 0.0, 0.0, 0.0]);
        assert_eq!(a.matvec(&[1.0, 0.0, 1.0]), [4.0, 10.0]);
        assert!((a.cols_norm(0..1) - 17f64.sqrt()).abs() < 1e-12);
    }
}
