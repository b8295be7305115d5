"""Reference outputs of CTR-GCN's test-time feeders, written with NumPy for the Rust tests.

Follows feeders/feeder_ucla.py (the `val` branch) and feeders/feeder_ntu.py with
tools.valid_crop_resize (the fixed-p branch) of CTR-GCN, step by step, on real clips. The input is
rounded to float32 first, as the crate stores clips. PyTorch's bilinear resize with
align_corners=False is written out in float32 (torch is not needed).

Run from the crate root:  python3 tests/reference/feeder_reference.py
Writes tests/data/reference/*.npy (float32).
"""
import json
import numpy as np

OUT = "tests/data/reference"
UCLA_BONES = [(1, 2), (2, 3), (3, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9),
              (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17),
              (19, 18), (20, 19)]
NTU_BONES = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
             (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17),
             (19, 18), (20, 19), (22, 23), (21, 21), (23, 8), (24, 25), (25, 12)]


def ucla_val(value, bone, motion, time_steps=52):
    """feeder_ucla.Feeder.__getitem__, val branch: value is (T, 20, 3) float64."""
    center = value[0, 1, :]
    value = value - center
    ax, ay, s = np.radians(0), np.radians(0), 1.0
    rx = np.asarray([[1, 0, 0], [0, np.cos(ax), np.sin(ax)], [0, -np.sin(ax), np.cos(ax)]])
    ry = np.asarray([[np.cos(ay), 0, -np.sin(ay)], [0, 1, 0], [np.sin(ay), 0, np.cos(ay)]])
    ss = np.asarray([[s, 0, 0], [0, s, 0], [0, 0, s]])
    x = np.dot(np.reshape(value, (-1, 3)), np.dot(ry, np.dot(rx, ss)))
    x = (x - np.min(x, axis=0)) / (np.max(x, axis=0) - np.min(x, axis=0))
    x = np.reshape(x * 2 - 1, (-1, 20, 3))
    idx = np.linspace(0, x.shape[0] - 1, time_steps).astype(int)
    data = x[idx, :, :]
    if bone:
        out = np.zeros_like(data)
        for v1, v2 in UCLA_BONES:
            out[:, v1 - 1, :] = data[:, v1 - 1, :] - data[:, v2 - 1, :]
        data = out
    if motion:
        out = np.zeros_like(data)
        out[:-1] = data[1:] - data[:-1]
        data = out
    return np.transpose(data, (2, 0, 1))[..., None].astype(np.float32)


def resize_linear(x, width):
    """F.interpolate(bilinear, align_corners=False) along the last axis, float32 as on the CPU."""
    length = x.shape[1]
    scale = np.float32(length) / np.float32(width)
    out = np.empty((x.shape[0], width), dtype=np.float32)
    for j in range(width):
        src = max(scale * np.float32(j + 0.5) - np.float32(0.5), np.float32(0))
        i0 = int(src)
        i1 = i0 + 1 if i0 < length - 1 else i0
        l1 = np.float32(src - np.float32(i0))
        l0 = np.float32(1) - l1
        out[:, j] = l0 * x[:, i0] + l1 * x[:, i1]
    return out


def ntu_test(rows, bone, motion, window=64, p=0.95):
    """feeder_ntu.Feeder.__getitem__ with the test settings: rows is (T, 150) float32."""
    data = rows.reshape((-1, 2, 25, 3)).transpose(3, 0, 2, 1)  # C, T, V, M
    valid = int(np.sum(data.sum(0).sum(-1).sum(-1) != 0))
    c, _, v, m = data.shape
    bias = int((1 - p) * valid / 2)
    crop = data[:, bias:valid - bias, :, :]
    flat = crop.transpose(0, 2, 3, 1).reshape(c * v * m, crop.shape[1])
    data = resize_linear(flat, window).reshape(c, v, m, window).transpose(0, 3, 1, 2)
    if bone:
        out = np.zeros_like(data)
        for v1, v2 in NTU_BONES:
            out[:, :, v1 - 1] = data[:, :, v1 - 1] - data[:, :, v2 - 1]
        data = out
    if motion:
        data[:, :-1] = data[:, 1:] - data[:, :-1]
        data[:, -1] = 0
    return np.ascontiguousarray(data, dtype=np.float32)


def main():
    for name in ["a04_s01_e00_v01", "a01_s01_e00_v03", "a02_s09_e04_v02"]:
        with open(f"tests/data/nw-ucla/{name}.json") as f:
            clip = np.asarray(json.load(f)["skeletons"], dtype=np.float32).astype(np.float64)
        np.save(f"{OUT}/ucla_{name}_joint.npy", ucla_val(clip, bone=False, motion=False))
        np.save(f"{OUT}/ucla_{name}_bone_motion.npy", ucla_val(clip, bone=True, motion=True))
    rows = np.loadtxt("tests/data/pku-mmd/skeletons/A10N08-L.txt", dtype=np.float32)
    # 43 leading frames (upsampled to 64) and 160 frames with both persons (downsampled).
    for start, end in [(0, 43), (600, 760)]:
        part = rows[start:end]
        tag = f"A10N08-L_{start}_{end}"
        np.save(f"{OUT}/ntu_{tag}_joint.npy", ntu_test(part, bone=False, motion=False))
        np.save(f"{OUT}/ntu_{tag}_bone_motion.npy", ntu_test(part, bone=True, motion=True))


if __name__ == "__main__":
    main()
