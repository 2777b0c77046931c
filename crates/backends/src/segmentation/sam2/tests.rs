use super::*;

#[test]
fn the_point_grid_is_numpys() {
    // build_point_grid(3).tolist() from sam2.utils.amg.
    let third = 0.166_666_666_666_666_66;
    let expected = [
        [third, third],
        [0.5, third],
        [0.833_333_333_333_333_4, third],
        [third, 0.5],
        [0.5, 0.5],
        [0.833_333_333_333_333_4, 0.5],
        [third, 0.833_333_333_333_333_4],
        [0.5, 0.833_333_333_333_333_4],
        [0.833_333_333_333_333_4, 0.833_333_333_333_333_4],
    ];
    assert_eq!(point_grid(3), expected);
    let grid = point_grid(32);
    assert_eq!(grid.len(), 1024);
    assert_eq!(grid[31], [0.984_375, 0.015_625]);
    assert_eq!(grid[33], [0.046_875, 0.046_875]);
    assert_eq!(grid[1023], [0.984_375, 0.984_375]);
    assert_eq!(point_grid(1), vec![[0.5, 0.5]]);
}

#[test]
fn boxes_are_inclusive_pixel_bounds_and_zero_for_an_empty_mask() {
    let mut masks = Tensor::zeros([3, 5, 6], (Kind::Bool, Device::Cpu));
    let _ = masks.get(0).narrow(0, 1, 3).narrow(1, 2, 2).fill_(1);
    let _ = masks.get(1).get(4).get(5).fill_(1);
    let boxes = Vec::<f32>::try_from(mask_boxes(&masks).flatten(0, -1)).unwrap();
    assert_eq!(
        boxes,
        vec![2.0, 1.0, 3.0, 3.0, 5.0, 4.0, 5.0, 4.0, 0.0, 0.0, 0.0, 0.0]
    );
    masks = masks.logical_not();
    let boxes = Vec::<f32>::try_from(mask_boxes(&masks).get(2)).unwrap();
    assert_eq!(boxes, vec![0.0, 0.0, 5.0, 4.0]);
}

#[test]
fn nms_keeps_the_best_of_overlapping_boxes_in_score_order() {
    let boxes = [
        [0.0, 0.0, 10.0, 10.0],
        [1.0, 1.0, 10.0, 10.0], // IoU 0.81 with the first
        [20.0, 20.0, 30.0, 30.0],
        [0.0, 0.0, 10.0, 5.0], // IoU 0.5 with the first
        [3.0, 3.0, 3.0, 3.0],  // zero area: IoU 0/0 is NaN, never suppressed
    ];
    let scores = [0.8, 0.9, 0.7, 0.95, 0.1];
    assert_eq!(box_nms(&boxes, &scores, 0.7), vec![3, 1, 2, 4]);
    // [1] overlaps [3] by 36 / 95 = 0.379.
    assert_eq!(box_nms(&boxes, &scores, 0.4), vec![3, 1, 2, 4]);
    assert_eq!(box_nms(&boxes, &scores, 0.35), vec![3, 2, 4]);
    assert_eq!(box_nms(&boxes, &scores, 1.0), vec![3, 1, 0, 2, 4]);
    assert!(box_nms(&[], &[], 0.7).is_empty());
}

#[test]
fn settings_out_of_range_are_named() {
    AmgConfig::default().validate().unwrap();
    let cases = [
        (
            AmgConfig {
                points_per_side: 0,
                ..AmgConfig::default()
            },
            "points_per_side",
        ),
        (
            AmgConfig {
                box_nms_thresh: 1.5,
                ..AmgConfig::default()
            },
            "box_nms_thresh",
        ),
        (
            AmgConfig {
                pred_iou_thresh: f32::NAN,
                ..AmgConfig::default()
            },
            "pred_iou_thresh",
        ),
    ];
    for (config, field) in cases {
        let error = config.validate().unwrap_err();
        assert!(error.contains(field), "{error}");
    }
}
