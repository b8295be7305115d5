use super::labels::LabelRow;
use crate::data::Sequence;

/// One trimmed action instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// `VIDEO:LINE`, the video and the line of its label file.
    pub name: String,
    /// 0-based (action − 1).
    pub label: u32,
    /// `(frames, 2, 25, 3)`, translated (see [`translate`]).
    pub clip: Sequence,
}

/// What became of a video's label rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cut {
    pub instances: Vec<Instance>,
    /// Rows whose frames are all zero or lie past the end of the video (MAMP skips them).
    pub skipped: Vec<String>,
}

/// Cuts the instances of `video` (rows `start..end`, the end clamped to the video's length),
/// skips the all-zero ones and translates each as NTU's stage 3 does.
pub fn cut_instances(video: &str, skeleton: &Sequence, rows: &[LabelRow]) -> Cut {
    let width = skeleton.persons * skeleton.joints * 3;
    let mut cut = Cut::default();
    for row in rows {
        let name = format!("{video}:{}", row.line);
        let end = row.end.min(skeleton.frames);
        let start = row.start.min(end);
        let data = &skeleton.data[start * width..end * width];
        if data.iter().all(|&x| x == 0.0) {
            cut.skipped.push(name);
            continue;
        }
        let mut clip = Sequence::new(
            end - start,
            skeleton.persons,
            skeleton.joints,
            data.to_vec(),
        );
        translate(&mut clip);
        cut.instances.push(Instance {
            name,
            label: row.action - 1,
            clip,
        });
    }
    cut
}

/// NTU's `seq_translation`: subtract person 1's joint 2 (mid spine) in the first frame where
/// person 1 is present from every joint of every person, then re-zero each person's frames that
/// were missing (all its values summing to 0). If person 1 is never present the clip is left as
/// it is (NTU's script would fail there).
pub fn translate(clip: &mut Sequence) {
    if clip.joints < 2 || clip.persons == 0 {
        return;
    }
    let person = clip.joints * 3;
    let width = clip.persons * person;
    let frames: Vec<&[f32]> = clip.data.chunks_exact(width).collect();
    let Some(first) = frames
        .iter()
        .find(|f| f[..person].iter().any(|&x| x != 0.0))
    else {
        return;
    };
    let origin = [first[3], first[4], first[5]];
    let missing: Vec<Vec<bool>> = frames
        .iter()
        .map(|f| {
            f.chunks_exact(person)
                .map(|p| p.iter().sum::<f32>() == 0.0)
                .collect()
        })
        .collect();
    for (frame, missing) in clip.data.chunks_exact_mut(width).zip(missing) {
        for (m, values) in frame.chunks_exact_mut(person).enumerate() {
            if missing[m] {
                values.fill(0.0);
            } else {
                for (i, x) in values.iter_mut().enumerate() {
                    *x -= origin[i % 3];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frame t: person 1's joint v is (t + 1, v, 1); person 2 present only on odd frames.
    fn video(frames: usize) -> Sequence {
        let mut data = vec![0.0; frames * 150];
        for t in 0..frames {
            for v in 0..25 {
                data[t * 150 + v * 3..][..3].copy_from_slice(&[t as f32 + 1.0, v as f32, 1.0]);
                if t % 2 == 1 {
                    data[t * 150 + 75 + v * 3..][..3].copy_from_slice(&[-1.0, -2.0, -3.0]);
                }
            }
        }
        Sequence::new(frames, 2, 25, data)
    }

    fn row(action: u32, start: usize, end: usize, line: usize) -> LabelRow {
        LabelRow {
            action,
            start,
            end,
            confidence: 1,
            line,
        }
    }

    #[test]
    fn translation_by_hand() {
        let mut clip = video(3);
        translate(&mut clip);
        // Origin = person 1's joint 2 in frame 0 = (1, 1, 1).
        assert_eq!(
            &clip.frame(2)[6..9],
            &[2.0, 1.0, 0.0],
            "person 1, joint 3, frame 2"
        );
        assert_eq!(
            &clip.frame(1)[75..78],
            &[-2.0, -3.0, -4.0],
            "person 2 moves too"
        );
        assert!(
            clip.frame(0)[75..].iter().all(|&x| x == 0.0),
            "missing person 2 stays 0"
        );
        assert!(clip.frame(2)[75..].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn translation_starts_at_the_first_frame_with_person_one() {
        let mut clip = video(4);
        clip.data[..150].fill(0.0);
        translate(&mut clip);
        assert!(
            clip.frame(0).iter().all(|&x| x == 0.0),
            "an empty frame stays empty"
        );
        assert_eq!(
            &clip.frame(1)[3..6],
            &[0.0, 0.0, 0.0],
            "origin from frame 1"
        );
    }

    #[test]
    fn cuts_rows_clamps_the_end_and_skips_empty_instances() {
        let mut v = video(10);
        v.data[6 * 150..8 * 150].fill(0.0); // frames 6 and 7 empty
        let rows = [
            row(5, 2, 5, 1),
            row(51, 6, 8, 2),
            row(1, 8, 40, 3),
            row(2, 12, 20, 4),
        ];
        let cut = cut_instances("0002-L", &v, &rows);
        let names: Vec<&str> = cut.instances.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["0002-L:1", "0002-L:3"]);
        assert_eq!(cut.skipped, ["0002-L:2", "0002-L:4"]);
        let (a, b) = (&cut.instances[0], &cut.instances[1]);
        assert_eq!(
            (a.label, a.clip.frames, b.label, b.clip.frames),
            (4, 3, 0, 2)
        );
        // Instance 1 starts at video frame 2: origin (3, 1, 1); its frame 0 joint 1 → (0, −1, 0).
        assert_eq!(&a.clip.frame(0)[..3], &[0.0, -1.0, 0.0]);
    }
}
