"""Detection/segmentation data: generated scenes (deterministic, boxes and masks consistent),
Pascal VOC and COCO read from small files in their real on-disk formats, letterboxing, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sakd.data.common import DatasetError
from sakd.data.detection import (
    IGNORE_INDEX,
    VOC_CLASSES,
    SceneSpec,
    detection_collate,
    letterbox,
    load_coco_splits,
    load_dense_splits,
    load_scene_splits,
    load_voc_splits,
    semantic_from_instances,
    targets_to,
)

# pycocotools 2.0 on numpy 2 warns about its own __array__ when decoding RLE masks
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SPEC = SceneSpec(canvas=32, scales=(1, 2), max_objects=3, train_scenes=40, test_scenes=12, seed=5)


@pytest.fixture(scope="module")
def scenes():
    return load_scene_splits("digits", "detection", SPEC, val_fraction=0.25, include_masks=True)


# ---------------------------------------------------------------------------------------------
# generated scenes


def test_scenes_are_deterministic_from_their_seed(scenes):
    again = load_scene_splits("digits", "detection", SPEC, val_fraction=0.25, include_masks=True)
    other = load_scene_splits("digits", "detection", SceneSpec(**{**SPEC.__dict__, "seed": 6}),
                              val_fraction=0.25)
    for split in ("train", "val", "test"):
        a, b = getattr(scenes, split).scenes, getattr(again, split).scenes
        assert np.array_equal(a.images, b.images) and np.array_equal(a.instances, b.instances)
        assert all(np.array_equal(x, y) for x, y in zip(a.boxes, b.boxes))
        assert all(np.array_equal(x, y) for x, y in zip(a.labels, b.labels))
    assert not np.array_equal(scenes.train.scenes.images, other.train.scenes.images)
    assert (len(scenes.train), len(scenes.val), len(scenes.test)) == (30, 10, 12)


def test_scene_description(scenes):
    info = scenes.info
    assert info.name == "digit-scenes" and info.num_classes == 10 and info.in_channels == 1
    assert info.image_size == (32, 32) and info.class_names == tuple("0123456789")
    pixels = scenes.train.scenes.images.astype(np.float64) / 255
    assert info.mean == pytest.approx((pixels.mean(),)) and info.std == pytest.approx((pixels.std(),))
    image, _ = scenes.train[0]
    raw = torch.from_numpy(scenes.train.scenes.images[0]).float() / 255
    assert torch.allclose(image, (raw - info.mean[0]) / info.std[0])
    seg = load_scene_splits("digits", "segmentation", SPEC)
    assert seg.info.num_classes == 11 and seg.info.class_names[0] == "background"


def test_scene_boxes_masks_and_class_maps_agree(scenes):
    segmentation = load_scene_splits("digits", "segmentation", SPEC, val_fraction=0.25)
    counts = []
    for split in ("train", "val", "test"):
        det, seg = getattr(scenes, split), getattr(segmentation, split)
        for i in range(len(det)):
            _, target = det[i]
            _, semantic = seg[i]
            boxes, labels, masks = target["boxes"], target["labels"], target["masks"].bool()
            assert boxes.dtype == torch.float32 and labels.dtype == torch.int64
            assert masks.shape == (len(labels), 32, 32) and target["iscrowd"].sum() == 0
            counts.append(len(labels))
            assert ((labels >= 0) & (labels < 10)).all()
            assert masks.sum(0).le(1).all()  # objects never overlap
            raw = torch.from_numpy(det.scenes.images[i][0]).float() / 255
            expected = torch.zeros(32, 32, dtype=torch.int64)
            for box, label, mask in zip(boxes, labels, masks):
                ys, xs = torch.nonzero(mask, as_tuple=True)
                tight = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
                assert torch.equal(box, tight)  # the box is the mask's tight box, pixel edges
                assert (raw[mask] >= 0.25 - 1e-6).all()  # the mask is the object's bright pixels
                expected[mask] = label + 1
            assert torch.equal(semantic, expected)
            assert (raw[semantic == 0] < 0.25).all()  # nothing bright is left unlabelled
    assert min(counts) >= 1 and max(counts) >= 2


def test_scenes_use_disjoint_objects_per_split():
    """Test scenes are drawn from the digits test images only: a scene set drawn from the test
    pool alone reproduces them exactly."""
    from sakd.data.detection import _digits_source, draw_scenes

    src = _digits_source()
    splits = load_scene_splits("digits", "detection", SPEC)
    rng_test = np.random.default_rng(np.random.SeedSequence(SPEC.seed).spawn(3)[2])
    again = draw_scenes(src.objects_test, src.labels_test, SPEC.test_scenes, 32, (1, 2), 1, 3,
                        0.25, rng_test)
    assert np.array_equal(again.images, splits.test.scenes.images)
    assert len(src.objects_test) == 359 and len(src.objects_train) == 1438


def test_collate_and_device_move(scenes):
    batch = [scenes.train[i] for i in range(4)]
    images, targets = detection_collate(batch)
    assert images.shape == (4, 1, 32, 32) and len(targets) == 4
    assert targets_to(targets, "cpu")[2]["boxes"].data_ptr() == targets[2]["boxes"].data_ptr()
    with pytest.raises(DatasetError, match="images of one size"):
        detection_collate([(torch.zeros(1, 8, 8), {}), (torch.zeros(1, 9, 8), {})])


def test_scene_errors_say_what_to_change(tmp_path):
    with pytest.raises(DatasetError, match="does not fit a 16-px canvas"):
        load_scene_splits("digits", "detection", SceneSpec(canvas=16, scales=(3,), train_scenes=2, test_scenes=2))
    with pytest.raises(DatasetError, match="unknown task 'keypoints'"):
        load_scene_splits("digits", "keypoints")
    with pytest.raises(DatasetError, match="min_objects <= max_objects"):
        SceneSpec(min_objects=3, max_objects=2)
    with pytest.raises(DatasetError, match=r"(?s)Fashion-MNIST not found: looked in .*apt-get install"):
        load_dense_splits("fashion-scenes", "detection", root=str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="unknown detection/segmentation data set 'kitti'"):
        load_dense_splits("kitti", "detection")


def test_fashion_scenes_from_idx_files(tmp_path, writers):
    arrays = writers.fashion_mnist(tmp_path, n_train=30, n_test=10)
    splits = load_dense_splits("fashion-scenes", "segmentation", root=str(tmp_path),
                               image_size=(64, 64), train_scenes=6, test_scenes=3)
    assert splits.info.name == "fashion-scenes" and splits.info.num_classes == 11
    assert splits.info.class_names[1] == "T-shirt/top"
    _, semantic = splits.train[0]
    assert semantic.shape == (64, 64) and int(semantic.max()) >= 1
    # test objects are the (noise) test images at scale 1: the tight box of a noise image is
    # its whole 28 x 28 square, and the pixels there are that image's
    detection = load_dense_splits("fashion-scenes", "detection", root=str(tmp_path),
                                  image_size=(64, 64), train_scenes=6, test_scenes=3)
    sources = arrays["t10k"][0]
    for i in range(3):
        image, boxes = detection.test.scenes.images[i, 0], detection.test.scenes.boxes[i]
        for x1, y1, x2, y2 in boxes.astype(int):
            assert (x2 - x1, y2 - y1) == (28, 28)
            assert any(np.array_equal(image[y1:y2, x1:x2], source) for source in sources)


# ---------------------------------------------------------------------------------------------
# letterbox


def test_letterbox_keeps_the_aspect_and_pads_with_the_mean_colour():
    image = torch.rand(3, 20, 40)
    boxes = torch.tensor([[4.0, 2.0, 20.0, 18.0]])
    masks = torch.zeros(1, 20, 40, dtype=torch.uint8)
    masks[0, 2:18, 4:20] = 1
    semantic = torch.zeros(20, 40, dtype=torch.int64)
    semantic[2:18, 4:20] = 7
    out, b, m, s = letterbox(image, (32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), boxes, masks, semantic)
    assert out.shape == (3, 32, 32) and m.shape == (1, 32, 32) and s.shape == (32, 32)
    assert torch.allclose(b, boxes * 0.8)
    assert (out[:, 16:] == 0).all() and (s[16:] == IGNORE_INDEX).all() and (m[0, 16:] == 0).all()
    assert torch.equal(m[0].bool(), s == 7)
    ys, xs = torch.nonzero(m[0], as_tuple=True)
    tight = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
    assert torch.allclose(tight, b[0], atol=1.0)  # nearest-neighbour masks: within a pixel


def test_semantic_from_instances_puts_small_objects_on_top_and_ignores_crowds():
    masks = torch.zeros(3, 6, 6, dtype=torch.uint8)
    masks[0, :4, :4] = 1  # large, label 0
    masks[1, 1:3, 1:3] = 1  # small, inside the large one, label 2
    masks[2, 4:, 4:] = 1  # crowd
    semantic = semantic_from_instances(masks, torch.tensor([0, 2, 1]), (6, 6), torch.tensor([0, 0, 1]))
    assert semantic[0, 0] == 1 and semantic[1, 1] == 3 and semantic[5, 5] == IGNORE_INDEX
    assert semantic[5, 0] == 0


# ---------------------------------------------------------------------------------------------
# Pascal VOC in its on-disk format


VOC_OBJECTS = {  # image id -> (size (w, h), [(class, xmin, ymin, xmax, ymax, difficult)])
    "2008_000001": ((40, 30), [("dog", 5, 3, 20, 25, 0), ("person", 22, 4, 38, 28, 1)]),
    "2008_000002": ((30, 30), [("car", 1, 1, 30, 12, 0)]),
    "2008_000003": ((24, 36), [("cat", 3, 10, 20, 30, 0)]),
}


def write_voc(root: Path) -> None:
    base = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets/Main", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    palette = [v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)]
    for image_id, ((w, h), objects) in VOC_OBJECTS.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(base / "JPEGImages" / f"{image_id}.jpg")
        xml = [f"<annotation><folder>VOC2012</folder><filename>{image_id}.jpg</filename>",
               f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size><segmented>1</segmented>"]
        classes = np.zeros((h, w), dtype=np.uint8)
        for name, x1, y1, x2, y2, difficult in objects:
            xml.append(f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
                       f"<difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
                       f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")
            classes[y1 - 1:y2, x1 - 1:x2] = VOC_CLASSES.index(name) + 1
            classes[y1 - 1, x1 - 1:x2] = 255  # the object border VOC marks "void"
        xml.append("</annotation>")
        (base / "Annotations" / f"{image_id}.xml").write_text("".join(xml))
        mask = Image.fromarray(classes, mode="P")
        mask.putpalette(palette)
        mask.save(base / "SegmentationClass" / f"{image_id}.png")
    for folder in ("Main", "Segmentation"):
        (base / "ImageSets" / folder / "train.txt").write_text("2008_000001\n2008_000002\n")
        (base / "ImageSets" / folder / "val.txt").write_text("2008_000003\n")


def test_voc_detection_reads_the_real_layout(tmp_path):
    write_voc(tmp_path)
    splits = load_voc_splits(str(tmp_path), "detection", (32, 32), augment=False)
    assert splits.info.name == "voc2012" and splits.info.num_classes == 20 and splits.info.in_channels == 3
    assert (len(splits.train), len(splits.test)) == (2, 1)
    image, target = splits.train[0]
    assert image.shape == (3, 32, 32)
    scale = 32 / 40  # 40 x 30 -> 32 x 24, padded at the bottom
    assert target["labels"].tolist() == [VOC_CLASSES.index("dog")]  # the difficult person is dropped
    assert torch.allclose(target["boxes"], torch.tensor([[4.0, 2.0, 20.0, 25.0]]) * scale)
    assert (image[:, 24:] == 0).all()
    # test split: difficult objects stay, marked iscrowd (ignored by mAP)
    test = load_voc_splits(str(tmp_path / "VOCdevkit"), "detection", (32, 32)).test  # root may be VOCdevkit
    _, target = test[0]
    assert target["labels"].tolist() == [VOC_CLASSES.index("cat")] and target["iscrowd"].tolist() == [0]


def test_voc_segmentation_reads_the_class_pngs(tmp_path):
    write_voc(tmp_path)
    splits = load_voc_splits(str(tmp_path), "segmentation", (30, 40), augment=False, val_fraction=0.5)
    assert splits.info.num_classes == 21 and splits.info.class_names[0] == "background"
    assert len(splits.train) == 1 and len(splits.val) == 1
    _, mask = splits.test[0]  # 24 x 36 (w x h) into 30 x 40 (h x w): scale 30/36, 20 x 30
    assert mask.shape == (30, 40) and mask.dtype == torch.int64
    values = set(mask.unique().tolist())
    assert values <= {0, VOC_CLASSES.index("cat") + 1, IGNORE_INDEX}
    assert VOC_CLASSES.index("cat") + 1 in values and 0 in values
    assert (mask[:, 20:] == IGNORE_INDEX).all()  # the letterbox padding is ignored


def test_voc_augmentation_flips_boxes_with_the_image(tmp_path):
    write_voc(tmp_path)
    augmented = load_voc_splits(str(tmp_path), "detection", (40, 40), augment=True).train
    plain_image, plain_target = load_voc_splits(str(tmp_path), "detection", (40, 40), augment=False).train[1]
    torch.manual_seed(0)
    samples = [augmented[1] for _ in range(12)]  # a 30 x 30 image: scale 40/30, no padding
    x1, y1, x2, y2 = plain_target["boxes"][0].tolist()
    seen = set()
    for image, target in samples:
        box = tuple(round(v, 4) for v in target["boxes"][0].tolist())
        if torch.allclose(image, plain_image, atol=1e-5):
            assert box == tuple(round(v, 4) for v in (x1, y1, x2, y2))
            seen.add("plain")
        else:
            assert torch.allclose(image, plain_image.flip(-1), atol=1e-5)
            assert box == tuple(round(v, 4) for v in (40 - x2, y1, 40 - x1, y2))
            seen.add("flipped")
    assert seen == {"plain", "flipped"}


def test_missing_voc_says_where_and_how(tmp_path):
    with pytest.raises(DatasetError, match=r"(?s)Pascal VOC 2012 \(detection\) not found: looked for "
                                           r".*VOCdevkit/VOC2012/JPEGImages.*host.robots.ox.ac.uk"):
        load_voc_splits(str(tmp_path), "detection")
    write_voc(tmp_path)
    (tmp_path / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").unlink()
    with pytest.raises(DatasetError, match=r"ImageSets/Segmentation/val.txt"):
        load_voc_splits(str(tmp_path), "segmentation")


# ---------------------------------------------------------------------------------------------
# COCO in its on-disk format


def write_coco(root: Path) -> None:
    from pycocotools import mask as coco_mask

    rng = np.random.default_rng(0)
    categories = [{"id": 1, "name": "person", "supercategory": "person"},
                  {"id": 3, "name": "car", "supercategory": "vehicle"},
                  {"id": 7, "name": "train", "supercategory": "vehicle"}]
    (root / "annotations").mkdir(parents=True)
    for split, images in (("train", [(1, 40, 30), (2, 20, 20)]), ("val", [(5, 32, 32)])):
        folder = root / f"{split}2017"
        folder.mkdir()
        entries, annotations = [], []
        for image_id, w, h in images:
            name = f"{image_id:012d}.jpg"
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
            entries.append({"id": image_id, "file_name": name, "width": w, "height": h})
        if split == "train":
            # a polygon (a 10 x 8 rectangle), a crowd in uncompressed RLE, and a compressed RLE
            annotations.append({"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": 80.0,
                                "bbox": [4, 6, 10, 8], "segmentation": [[4, 6, 14, 6, 14, 14, 4, 14]]})
            crowd = np.zeros((30, 40), dtype=np.uint8, order="F")
            crowd[20:30, 30:40] = 1
            counts = _uncompressed_counts(crowd)
            annotations.append({"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 100.0,
                                "bbox": [30, 20, 10, 10], "segmentation": {"counts": counts, "size": [30, 40]}})
            small = np.zeros((20, 20), dtype=np.uint8, order="F")
            small[2:7, 3:9] = 1
            rle = coco_mask.encode(small)
            rle["counts"] = rle["counts"].decode("ascii")
            annotations.append({"id": 3, "image_id": 2, "category_id": 7, "iscrowd": 0, "area": 30.0,
                                "bbox": [3, 2, 6, 5], "segmentation": rle})
        else:
            annotations.append({"id": 9, "image_id": 5, "category_id": 1, "iscrowd": 0, "area": 64.0,
                                "bbox": [8, 8, 8, 8], "segmentation": [[8, 8, 16, 8, 16, 16, 8, 16]]})
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(
            {"images": entries, "annotations": annotations, "categories": categories}))


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE: run lengths of the column-major flattened mask, zeros first."""
    flat = mask.flatten(order="F")
    counts, value, run = [], 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return [int(c) for c in counts]


def test_coco_detection_reads_instances_json(tmp_path):
    write_coco(tmp_path)
    splits = load_coco_splits(str(tmp_path), "detection", (40, 40), augment=False, include_masks=True)
    assert splits.info.num_classes == 3 and splits.info.class_names == ("person", "car", "train")
    assert splits.category_ids == (1, 3, 7)
    _, target = splits.train[0]  # 40 x 30: no resize, padded to 40 x 40; the crowd is dropped
    assert target["labels"].tolist() == [1] and int(target["image_id"]) == 1
    assert torch.allclose(target["boxes"], torch.tensor([[4.0, 6.0, 14.0, 14.0]]))
    mask = target["masks"][0].bool()
    ys, xs = torch.nonzero(mask, as_tuple=True)
    assert (xs.min(), ys.min()) == (4, 6) and abs(int(xs.max()) + 1 - 14) <= 1  # polygon rasterized
    _, target = splits.train[1]  # 20 x 20 -> 40 x 40: scale 2, compressed RLE
    assert target["labels"].tolist() == [2]
    assert torch.allclose(target["boxes"], torch.tensor([[6.0, 4.0, 18.0, 14.0]]))
    assert int(target["masks"][0].sum()) == 5 * 6 * 4
    _, target = splits.test[0]
    assert target["labels"].tolist() == [0] and target["iscrowd"].tolist() == [0]


def test_coco_segmentation_builds_class_maps(tmp_path):
    write_coco(tmp_path)
    splits = load_coco_splits(str(tmp_path), "segmentation", (30, 40), augment=False)
    assert splits.info.num_classes == 4
    _, mask = splits.train[0]
    assert mask.shape == (30, 40)
    assert (mask[20:30, 30:40] == IGNORE_INDEX).all()  # the crowd region is ignored
    assert (mask[7:13, 5:13] == 2).all()  # the car (label 1) is class 2
    assert (mask[0:5, 20:30] == 0).all()


def test_missing_coco_says_where_and_how(tmp_path):
    with pytest.raises(DatasetError, match=r"(?s)COCO 2017 not found: looked for .*train2017.*"
                                           r"instances_train2017.json.*cocodataset.org"):
        load_coco_splits(str(tmp_path), "detection")
