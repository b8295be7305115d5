"""Writes the fixtures of tests/pyskl.rs to tests/fixtures/pyskl/: two pyskl annotation pickles
made from real clips and the outputs of ProtoGCN's pipeline steps on them.

Usage: python3 tests/reference/pyskl_pipeline.py   (numpy; safetensors for fixture_io)

The pipeline classes below are copied from ProtoGCN's `protogcn/datasets/pipelines/`
(`pose_related.py`: PreNormalize3D, RandomRot, Spatial_Flip, FormatGCNInput; `sampling.py`:
UniformSampleDecode) with only the registry decorators and unused branches (align_spine, 2D
rotation, keypoint_score, list inputs) removed, and run as `configs/ntu120_xsub/j.py` chains them.

Inputs (`ntu.pkl`, protocol 2 as mmcv's `dump` writes pyskl's pickles; `ucla.pkl`, protocol 4):
- `S001C001P001R001A050`: the two persons of the raw NTU file, frames 0-47, person 0 blanked in
  frames 5-16 and both in 40-43, so PreNormalize3D swaps the persons and drops 4 frames; f16.
- `S004C002P003R001A017`: 124 frames, M = 2 with an empty second person, joint 8 zero in frames
  10-19 (the mask); f16.
- `S001C001P001R001A002`: A002's 158 frames followed by A004's 99 (257 > 2·clip_len); M = 1; f16.
- `S002C001P003R001A003`: 100 frames (= clip_len); float64.
- `S001C001P001R001A005`: all zero, 5 frames (PreNormalize3D and RandomRot leave it alone); f16.
- `ucla.pkl`: NW-UCLA `a04_s01_e00_v01` (141 frames) and the one-frame `a02_s09_e04_v02`, float32.
The split lists name one sample with no annotation, which pyskl skips.

Outputs (`expected.safetensors`), per sample `<name>`:
- `<name>.norm`: PreNormalize3D's output, (M, T', V, 3), in the input dtype (f16 as f32);
- `<name>.test_indices`: the frame indices of the 10 test clips (10, 100), read off by running
  UniformSampleDecode on an array whose values are the frame numbers;
- `<name>.test_output`: clips `<name>.test_clips` of the test pipeline's output
  (10, 2, 100, V, 3), for the first NTU sample (clips 0 and 9) and both NW-UCLA ones;
- for three samples the training pipeline with seeded numpy and random: `<name>.theta` (3,),
  `<name>.rot` (3, 3), `<name>.flip` (1,) 0/1, `<name>.train_indices` (100,) and
  `<name>.train_output` (2, 100, V, 3);
- `indices.T<n>`: the 10 test clips' indices for a clip of n frames, for n in `LENGTHS`.
"""

import copy as cp
import gzip
import json
import os
import pickle
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixture_io import write_safetensors  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "fixtures" / "pyskl"
LENGTHS = [1, 2, 5, 9, 10, 11, 37, 99, 100, 101, 150, 199, 200, 201, 299, 300, 1000]


# ---- copied from ProtoGCN protogcn/datasets/pipelines/pose_related.py ----

class PreNormalize3D:
    """PreNormalize for NTURGB+D 3D keypoints (x, y, z)."""

    def __init__(self, zaxis=[0, 1], xaxis=[8, 4], align_spine=True, align_center=True):
        self.zaxis = zaxis
        self.xaxis = xaxis
        self.align_spine = align_spine
        self.align_center = align_center

    def __call__(self, results):
        skeleton = results['keypoint']
        total_frames = results.get('total_frames', skeleton.shape[1])

        M, T, V, C = skeleton.shape
        assert T == total_frames
        if skeleton.sum() == 0:
            return results

        index0 = [i for i in range(T) if not np.all(np.isclose(skeleton[0, i], 0))]

        assert M in [1, 2]
        if M == 2:
            index1 = [i for i in range(T) if not np.all(np.isclose(skeleton[1, i], 0))]
            if len(index0) < len(index1):
                skeleton = skeleton[:, np.array(index1)]
                skeleton = skeleton[[1, 0]]
            else:
                skeleton = skeleton[:, np.array(index0)]
        else:
            skeleton = skeleton[:, np.array(index0)]

        T_new = skeleton.shape[1]

        if self.align_center:
            if skeleton.shape[2] == 25:
                main_body_center = skeleton[0, 0, 1].copy()
            else:
                main_body_center = skeleton[0, 0, -1].copy()
            mask = ((skeleton != 0).sum(-1) > 0)[..., None]
            skeleton = (skeleton - main_body_center) * mask

        assert not self.align_spine, "align_spine is not part of this fixture"

        results['keypoint'] = skeleton
        results['total_frames'] = T_new
        results['body_center'] = main_body_center
        return results


class RandomRot:

    def __init__(self, theta=0.3):
        self.theta = theta

    def _rot3d(self, theta):
        cos, sin = np.cos(theta), np.sin(theta)
        rx = np.array([[1, 0, 0], [0, cos[0], sin[0]], [0, -sin[0], cos[0]]])
        ry = np.array([[cos[1], 0, -sin[1]], [0, 1, 0], [sin[1], 0, cos[1]]])
        rz = np.array([[cos[2], sin[2], 0], [-sin[2], cos[2], 0], [0, 0, 1]])

        rot = np.matmul(rz, np.matmul(ry, rx))
        return rot

    def __call__(self, results):
        skeleton = results['keypoint']
        M, T, V, C = skeleton.shape

        if np.all(np.isclose(skeleton, 0)):
            return results

        assert C == 3
        theta = np.random.uniform(-self.theta, self.theta, size=3)
        rot_mat = self._rot3d(theta)
        results['keypoint'] = np.einsum('ab,mtvb->mtva', rot_mat, skeleton)

        return results


class Spatial_Flip:
    """Flip the skeleton. """

    def __init__(self, dataset='nturgb+d', p=0.5):
        assert isinstance(p, tuple) or isinstance(p, float)
        self.dataset = dataset
        self.p = p

    def __call__(self, results):
        skeleton = results['keypoint']
        p = self.p
        transform_order = {'ntu': [0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 16, 17, 18,
                                   19, 12, 13, 14, 15, 20, 23, 24, 21, 22],
                           'nw_ucla': [0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 16, 17,
                                       18, 19, 12, 13, 14, 15],
                           'openpose': [0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10,
                                        15, 14, 17, 16]
                           }
        if random.random() < p:
            if self.dataset == 'nturgb+d':
                index = transform_order['ntu']
            elif self.dataset == 'nw_ucla':
                index = transform_order['nw_ucla']
            elif self.dataset == 'openpose':
                index = transform_order['openpose']
            trans_skeleton = skeleton[:, :, index, :]
            results['keypoint'] = trans_skeleton
        else:
            results['keypoint'] = skeleton

        return results


class FormatGCNInput:
    """Format final skeleton shape to the given input_format. """

    def __init__(self, num_person=2, mode='zero'):
        self.num_person = num_person
        assert mode in ['zero', 'loop']
        self.mode = mode

    def __call__(self, results):
        keypoint = results['keypoint']

        # M T V C
        if keypoint.shape[0] < self.num_person:
            pad_dim = self.num_person - keypoint.shape[0]
            pad = np.zeros((pad_dim, ) + keypoint.shape[1:], dtype=keypoint.dtype)
            keypoint = np.concatenate((keypoint, pad), axis=0)
            if self.mode == 'loop' and keypoint.shape[0] == 1:
                for i in range(1, self.num_person):
                    keypoint[i] = keypoint[0]

        elif keypoint.shape[0] > self.num_person:
            keypoint = keypoint[:self.num_person]

        M, T, V, C = keypoint.shape
        nc = results.get('num_clips', 1)
        assert T % nc == 0
        keypoint = keypoint.reshape((M, nc, T // nc, V, C)).transpose(1, 0, 2, 3, 4)
        results['keypoint'] = np.ascontiguousarray(keypoint)
        return results


# ---- copied from ProtoGCN protogcn/datasets/pipelines/sampling.py ----

class UniformSampleDecode:

    def __init__(self, clip_len, num_clips=1, p_interval=1, seed=255):
        self.clip_len = clip_len
        self.num_clips = num_clips
        self.seed = seed
        self.p_interval = p_interval
        if not isinstance(p_interval, tuple):
            self.p_interval = (p_interval, p_interval)

    # will directly return the decoded clips
    def _get_clips(self, full_kp, clip_len):
        M, T, V, C = full_kp.shape
        clips = []

        for clip_idx in range(self.num_clips):
            pi = self.p_interval
            ratio = np.random.rand() * (pi[1] - pi[0]) + pi[0]
            num_frames = int(ratio * T)
            off = np.random.randint(T - num_frames + 1)

            if num_frames < clip_len:
                start = np.random.randint(0, num_frames)
                inds = (np.arange(start, start + clip_len) % num_frames) + off
                clip = full_kp[:, inds].copy()
            elif clip_len <= num_frames < 2 * clip_len:
                basic = np.arange(clip_len)
                inds = np.random.choice(clip_len + 1, num_frames - clip_len, replace=False)
                offset = np.zeros(clip_len + 1, dtype=np.int64)
                offset[inds] = 1
                inds = basic + np.cumsum(offset)[:-1] + off
                clip = full_kp[:, inds].copy()
            else:
                bids = np.array([i * num_frames // clip_len for i in range(clip_len + 1)])
                bsize = np.diff(bids)
                bst = bids[:clip_len]
                offset = np.random.randint(bsize)
                inds = bst + offset + off
                clip = full_kp[:, inds].copy()
            clips.append(clip)
        return np.concatenate(clips, 1)

    def _handle_dict(self, results):
        assert 'keypoint' in results
        kp = results.pop('keypoint')

        kp = kp.astype(np.float32)
        # start_index will not be used
        kp = self._get_clips(kp, self.clip_len)

        results['clip_len'] = self.clip_len
        results['frame_interval'] = None
        results['num_clips'] = self.num_clips
        results['keypoint'] = kp
        return results

    def __call__(self, results):
        test_mode = results.get('test_mode', False)
        if test_mode is True:
            np.random.seed(self.seed)
        return self._handle_dict(results)


# ---- end of the copies ----

def compose(steps, results):
    for step in steps:
        results = step(results)
    return results


def indices_of(frames, num_clips, test_mode):
    """The frame indices UniformSampleDecode picks, read off an array of frame numbers."""
    kp = np.arange(frames, dtype=np.float32).reshape(1, frames, 1, 1)
    out = UniformSampleDecode(100, num_clips)({'keypoint': kp, 'test_mode': test_mode})
    return out['keypoint'].reshape(num_clips, 100).astype(np.int16)


def read_ntu(name):
    """The raw file's bodies, in order of first appearance: {id: (frames, 25, 3)} over all frames."""
    lines = gzip.open(ROOT / "data" / "ntu" / "raw" / f"{name}.skeleton.gz", "rt").read().split("\n")
    pos = 0

    def line():
        nonlocal pos
        pos += 1
        return lines[pos - 1].split()

    frames = int(line()[0])
    bodies = {}
    for t in range(frames):
        for _ in range(int(line()[0])):
            body = line()[0]
            joints = int(line()[0])
            xyz = [[float(v) for v in line()[:3]] for _ in range(joints)]
            bodies.setdefault(body, np.zeros((frames, 25, 3)))[t] = xyz
    return list(bodies.values())


def read_ucla(name):
    data = json.loads((ROOT / "data" / "nw-ucla" / f"{name}.json").read_text())
    return np.array(data["skeletons"], dtype=np.float32)[None]


def inputs():
    a050 = np.stack(read_ntu("S001C001P001R001A050")[:2])[:, :48]
    a050[0, 5:17] = 0
    a050[:, 40:44] = 0
    a017 = np.zeros((2, 124, 25, 3))
    a017[0] = read_ntu("S004C002P003R001A017")[0]
    a017[0, 10:20, 7] = 0
    a002 = np.concatenate([read_ntu("S001C001P001R001A002")[0], read_ntu("S001C001P001R001A004")[0]])[None]
    a003 = read_ntu("S002C001P003R001A003")[0][None]
    ntu = [
        ("S001C001P001R001A050", a050.astype(np.float16)),
        ("S004C002P003R001A017", a017.astype(np.float16)),
        ("S001C001P001R001A002", a002.astype(np.float16)),
        ("S002C001P003R001A003", a003.astype(np.float64)),
        ("S001C001P001R001A005", np.zeros((2, 5, 25, 3), np.float16)),
    ]
    ucla = [(n, read_ucla(n)) for n in ["a04_s01_e00_v01", "a02_s09_e04_v02"]]
    return ntu, ucla


def annotation(name, keypoint):
    label = int(name.split("A")[-1]) - 1 if name.startswith("S") else int(name[1:3]) - 1
    return dict(frame_dir=name, label=label, keypoint=keypoint, total_frames=keypoint.shape[1])


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    ntu, ucla = inputs()
    pickles = {
        "ntu.pkl": (ntu, 2, {"xsub_train": [ntu[0][0], ntu[2][0], "S001C001P001R001A999", ntu[4][0]],
                             "xsub_val": [ntu[3][0], ntu[1][0]]}),
        "ucla.pkl": (ucla, 4, {"train": [ucla[0][0]], "val": [ucla[1][0], ucla[0][0]]}),
    }
    for file, (samples, protocol, split) in pickles.items():
        data = dict(split=split, annotations=[annotation(n, k) for n, k in samples])
        tmp = OUT / (file + ".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(data, f, protocol=protocol)
        os.replace(tmp, OUT / file)

    tensors = {}
    full_output = {ntu[0][0]: [0, 9], ucla[0][0]: [3], ucla[1][0]: [9]}
    trained = {ntu[0][0]: 1, ntu[2][0]: 2, ucla[0][0]: 3}
    for dataset, samples in [("nturgb+d", ntu), ("nw_ucla", ucla)]:
        for name, keypoint in samples:
            norm = PreNormalize3D(align_spine=False)({"keypoint": keypoint.copy()})["keypoint"]
            stored = norm.astype(np.float32) if norm.dtype == np.float16 else norm
            tensors[f"{name}.norm"] = stored
            frames = norm.shape[1]
            tensors[f"{name}.test_indices"] = indices_of(frames, 10, True)
            test = [PreNormalize3D(align_spine=False), UniformSampleDecode(100, num_clips=10), FormatGCNInput()]
            out = compose(test, {"keypoint": keypoint.copy(), "test_mode": True})["keypoint"]
            assert out.dtype == np.float32 and out.shape == (10, 2, 100, keypoint.shape[2], 3)
            if name in full_output:
                keep = full_output[name]
                tensors[f"{name}.test_output"] = out[keep]
                tensors[f"{name}.test_clips"] = np.array(keep, np.int16)
            if name in trained:
                seed = trained[name]
                np.random.seed(seed)
                random.seed(seed)
                # What the pipeline is about to draw, read ahead on copies of the generators.
                state, py_state = np.random.get_state(), random.getstate()
                theta = np.random.uniform(-0.2, 0.2, size=3)
                flip = random.random() < 0.5
                train_indices = indices_of(frames, 1, False)[0]
                np.random.set_state(state)
                random.setstate(py_state)
                train = [PreNormalize3D(align_spine=False), RandomRot(theta=0.2),
                         Spatial_Flip(dataset=dataset, p=0.5), UniformSampleDecode(100), FormatGCNInput()]
                out = compose(train, {"keypoint": keypoint.copy()})["keypoint"]
                tensors[f"{name}.theta"] = theta
                tensors[f"{name}.rot"] = RandomRot()._rot3d(theta)
                tensors[f"{name}.flip"] = np.array([int(flip)], np.int32)
                tensors[f"{name}.train_indices"] = train_indices
                tensors[f"{name}.train_output"] = out[0]
    for n in LENGTHS:
        tensors[f"indices.T{n}"] = indices_of(n, 10, True)
    size = write_safetensors(OUT / "expected.safetensors", tensors, {"numpy": np.__version__},
                             max_bytes=1_000_000)
    print(f"wrote {OUT}: expected.safetensors {size:,} bytes")


if __name__ == "__main__":
    main()
