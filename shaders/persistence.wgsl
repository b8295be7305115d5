// 0-dimensional Vietoris–Rips persistence of BlockGCN's joint-distance profiles. Per sample n of
// joints x (N, C, T, V, M): x̄[v] is joint v averaged over frames and persons, D[a][b] =
// ‖x̄[a] − x̄[b]‖, and the rows of D are V points in R^V at the distances
// E[a][b] = ‖D[a, :] − D[b, :]‖. Every bar is born at 0 and dies at an edge length of the
// Euclidean minimum spanning tree of those points: V − 1 deaths. The reference normalises D by
// the batch-global max m first (its min is the diagonal's 0); dividing D by m divides every E
// and so every death by m and leaves the tree itself unchanged, so the normalisation is one
// division of the finished deaths.
//
// Entries:
//   ph_sample    (workgroup 64, one sample per invocation, grid folded over x and y): D, its max,
//                Prim's algorithm from joint 0 over E (ties to the lower joint), the deaths sorted
//                ascending. Bindings: 1 x, 2 deaths (N, V − 1) unnormalised, 3 max (N).
//   ph_normalise (workgroup 256, one death per invocation, grid folded over x and y): the death
//                divided by the max over the samples' maxima (exact, so in any order).
//                Bindings: 1 deaths, 2 max, 3 out (N, V − 1).
// Binding 0 is the params block in both. Every loop runs in a fixed order: no float atomics.

// The largest joint count: the private distance matrix holds MAX_V² floats.
const MAX_V: u32 = 32u;

struct Params {
    samples: u32,
    channels: u32,
    frames: u32,
    joints: u32,
    persons: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, size: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * size + lid;
}

@group(0) @binding(1) var<storage, read> smp_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> smp_deaths: array<f32>;
@group(0) @binding(3) var<storage, read_write> smp_max: array<f32>;

// D of the invocation's sample, row-major with a row stride of V.
var<private> dist: array<f32, MAX_V * MAX_V>;
// One channel of the joint means.
var<private> mean: array<f32, MAX_V>;
// Prim's state: each joint's shortest edge into the tree, and whether it is in the tree.
var<private> key: array<f32, MAX_V>;
var<private> in_tree: array<bool, MAX_V>;
var<private> deaths: array<f32, MAX_V>;

// E[a][b], the distance between rows a and b of D.
fn row_distance(a: u32, b: u32) -> f32 {
    var squares = 0.0;
    for (var w = 0u; w < p.joints; w++) {
        let d = dist[a * p.joints + w] - dist[b * p.joints + w];
        squares += d * d;
    }
    return sqrt(squares);
}

// Fills `dist` from the joints of sample n; returns its max.
fn distances(n: u32) -> f32 {
    let v_len = p.joints;
    for (var i = 0u; i < v_len * v_len; i++) {
        dist[i] = 0.0;
    }
    let count = f32(p.frames * p.persons);
    for (var c = 0u; c < p.channels; c++) {
        let plane = (n * p.channels + c) * p.frames;
        for (var v = 0u; v < v_len; v++) {
            var sum = 0.0;
            for (var t = 0u; t < p.frames; t++) {
                let at = ((plane + t) * v_len + v) * p.persons;
                for (var m = 0u; m < p.persons; m++) {
                    sum += smp_x[at + m];
                }
            }
            mean[v] = sum / count;
        }
        for (var a = 0u; a < v_len; a++) {
            for (var b = 0u; b < v_len; b++) {
                let d = mean[a] - mean[b];
                dist[a * v_len + b] += d * d;
            }
        }
    }
    var largest = 0.0;
    for (var i = 0u; i < v_len * v_len; i++) {
        dist[i] = sqrt(dist[i]);
        largest = max(largest, dist[i]);
    }
    return largest;
}

@compute @workgroup_size(64)
fn ph_sample(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = flat_index(wid, nwg, lid, 64u);
    if n >= p.samples {
        return;
    }
    let v_len = p.joints;
    smp_max[n] = distances(n);

    in_tree[0] = true;
    for (var v = 1u; v < v_len; v++) {
        in_tree[v] = false;
        key[v] = row_distance(0u, v);
    }
    for (var step = 0u; step + 1u < v_len; step++) {
        var next = 0u;
        var best = 0.0;
        for (var v = 1u; v < v_len; v++) {
            if !in_tree[v] && (next == 0u || key[v] < best) {
                next = v;
                best = key[v];
            }
        }
        in_tree[next] = true;
        // Insertion into the sorted deaths so far.
        var at = step;
        while at > 0u && deaths[at - 1u] > best {
            deaths[at] = deaths[at - 1u];
            at--;
        }
        deaths[at] = best;
        for (var v = 1u; v < v_len; v++) {
            if !in_tree[v] {
                key[v] = min(key[v], row_distance(next, v));
            }
        }
    }
    let row = n * (v_len - 1u);
    for (var i = 0u; i + 1u < v_len; i++) {
        smp_deaths[row + i] = deaths[i];
    }
}

@group(0) @binding(1) var<storage, read> nrm_deaths: array<f32>;
@group(0) @binding(2) var<storage, read> nrm_max: array<f32>;
@group(0) @binding(3) var<storage, read_write> nrm_out: array<f32>;

@compute @workgroup_size(256)
fn ph_normalise(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = flat_index(wid, nwg, lid, 256u);
    if at >= p.samples * (p.joints - 1u) {
        return;
    }
    var largest = 0.0;
    for (var n = 0u; n < p.samples; n++) {
        largest = max(largest, nrm_max[n]);
    }
    nrm_out[at] = nrm_deaths[at] / largest;
}
