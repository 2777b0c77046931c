//! Disjoint-set forest with union by rank and path compression, tracking each set's size and
//! the Felzenszwalb–Huttenlocher merge threshold `Int(C) + k/|C|` at its root.

/// Sets over `0..n`, each element starting alone.
#[derive(Debug, Clone)]
pub(crate) struct DisjointSets {
    parent: Vec<u32>,
    rank: Vec<u8>,
    size: Vec<u32>,
    /// `Int(C) + k/|C|` of the set rooted here (meaningful at roots only).
    threshold: Vec<f32>,
}

impl DisjointSets {
    /// `count` singletons whose threshold is `k / 1` (a single pixel has `Int(C) = 0`).
    pub(crate) fn new(count: usize, k: f32) -> Self {
        Self {
            parent: (0..count as u32).collect(),
            rank: vec![0; count],
            size: vec![1; count],
            threshold: vec![k; count],
        }
    }

    /// The root of `element`'s set; compresses the path so every node on it points at the root.
    pub(crate) fn find(&mut self, element: u32) -> u32 {
        let mut root = element;
        while self.parent[root as usize] != root {
            root = self.parent[root as usize];
        }
        let mut node = element;
        while self.parent[node as usize] != root {
            let next = self.parent[node as usize];
            self.parent[node as usize] = root;
            node = next;
        }
        root
    }

    /// Joins the sets rooted at `a` and `b` (both must be distinct roots); returns the new root.
    pub(crate) fn union_roots(&mut self, a: u32, b: u32) -> u32 {
        debug_assert!(a != b && self.parent[a as usize] == a && self.parent[b as usize] == b);
        let (child, root) = if self.rank[a as usize] < self.rank[b as usize] {
            (a, b)
        } else {
            (b, a)
        };
        self.parent[child as usize] = root;
        if self.rank[child as usize] == self.rank[root as usize] {
            self.rank[root as usize] += 1;
        }
        self.size[root as usize] += self.size[child as usize];
        root
    }

    /// Number of elements in the set rooted at `root`.
    pub(crate) fn size(&self, root: u32) -> u32 {
        self.size[root as usize]
    }

    /// Merge threshold of the set rooted at `root`.
    pub(crate) fn threshold(&self, root: u32) -> f32 {
        self.threshold[root as usize]
    }

    /// Sets the merge threshold of the set rooted at `root`.
    pub(crate) fn set_threshold(&mut self, root: u32, threshold: f32) {
        self.threshold[root as usize] = threshold;
    }

    /// Compact labels `0..count` per element, numbered by first appearance; returns the count.
    pub(crate) fn labels(&mut self) -> (Vec<u32>, usize) {
        let count = self.parent.len();
        let mut label_of_root = vec![u32::MAX; count];
        let mut next = 0u32;
        let labels = (0..count as u32)
            .map(|element| {
                let root = self.find(element) as usize;
                if label_of_root[root] == u32::MAX {
                    label_of_root[root] = next;
                    next += 1;
                }
                label_of_root[root]
            })
            .collect();
        (labels, next as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unions_track_size_and_rank_and_labels_are_compact() {
        let mut sets = DisjointSets::new(6, 2.0);
        let ab = sets.union_roots(0, 1);
        let abc = {
            let root = sets.find(2);
            sets.union_roots(ab, root)
        };
        assert_eq!(sets.size(abc), 3);
        // Union by rank: the rank-1 tree absorbs the singleton, so its root stays the root.
        assert_eq!(abc, ab);
        let de = sets.union_roots(3, 4);
        assert_ne!(sets.find(0), sets.find(3));
        assert_eq!(sets.find(1), sets.find(2));
        assert_eq!(sets.threshold(de), 2.0);
        sets.set_threshold(de, 0.5);
        let root = sets.find(4);
        assert_eq!(sets.threshold(root), 0.5);
        let (labels, count) = sets.labels();
        assert_eq!(count, 3);
        assert_eq!(labels, vec![0, 0, 0, 1, 1, 2]);
    }

    #[test]
    fn find_compresses_long_paths() {
        let mut sets = DisjointSets::new(4, 1.0);
        // Build a chain 3 -> 2 -> 1 -> 0 by hand.
        sets.parent = vec![0, 0, 1, 2];
        assert_eq!(sets.find(3), 0);
        assert_eq!(sets.parent, vec![0, 0, 0, 0]);
    }
}
