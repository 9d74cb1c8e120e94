"""Training photos: an image-folder dataset of random crops, and its LightningDataModule."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from gan_stylizer.config.schema import DataConfig
from gan_stylizer.errors import ConfigError, ImageError
from gan_stylizer.io.images import IMAGE_EXTENSIONS, load_image
from gan_stylizer.io.inputs import list_images, sample_photos
from gan_stylizer.seeding import derived_seed, seeded_generator

log = logging.getLogger(__name__)

COCO_HELP = (
    "mkdir -p {root} && cd {root} && curl -LO http://images.cocodataset.org/zips/train2017.zip "
    "&& unzip -q train2017.zip && rm train2017.zip"
)


def random_resized_crop(
    image: torch.Tensor, size: int, long_side: tuple[int, int], gen: torch.Generator | None = None
) -> torch.Tensor:
    """RGB [0,1] [1,3,H,W] -> [3,size,size]: resize so the long side is uniform in long_side
    (and the short side at least size), then a random crop and a random horizontal flip."""
    h, w = image.shape[-2:]
    target = int(torch.randint(long_side[0], long_side[1] + 1, (1,), generator=gen))
    scale = max(target / max(h, w), size / min(h, w))
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    image = F.interpolate(
        image, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False
    ).clamp(0, 1)
    top = int(torch.randint(0, new_h - size + 1, (1,), generator=gen))
    left = int(torch.randint(0, new_w - size + 1, (1,), generator=gen))
    crop = image[0, :, top : top + size, left : left + size]
    if torch.rand((), generator=gen) < 0.5:
        crop = crop.flip(-1)
    return crop.contiguous()


class PhotoDataset(Dataset):
    """Random crops of photos. An unreadable file is skipped with one log line (and counted),
    and the next file is used instead: a bad file never stops a run mid-epoch.

    dataset[(index, crop_seed)] crops photo `index` with a generator seeded by crop_seed (what
    PhotoStream asks for in training); dataset[index] draws from torch's global RNG."""

    def __init__(self, files: Sequence[Path], image_size: int, long_side: tuple[int, int]) -> None:
        if not files:
            raise ConfigError("the training photo list is empty")
        self.files = list(files)
        self.image_size = image_size
        self.long_side = (int(long_side[0]), int(long_side[1]))
        self.skipped: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | tuple[int, int]) -> torch.Tensor:
        index, crop_seed = key if isinstance(key, tuple) else (key, None)
        gen = None if crop_seed is None else torch.Generator().manual_seed(crop_seed)
        for offset in range(len(self.files)):
            path = self.files[(index + offset) % len(self.files)]
            if path in self.skipped:
                continue
            try:
                image = load_image(path)
            except ImageError as err:
                self.skipped.add(path)
                log.warning("skipping %s (%d skipped so far)", err, len(self.skipped))
                continue
            return random_resized_crop(image, self.image_size, self.long_side, gen)
        raise RuntimeError("no readable image is left in the training set")


class PhotoStream(Sampler):
    """Which photo and which crop, for one rank: an endless stream that depends on the seed only.

    Global sample p is photo order_e[p mod n] of epoch e = p div n (a seeded permutation of the n
    photos per epoch), cropped with a generator seeded by (seed, p). Global batch b holds samples
    [b·B·W, (b+1)·B·W) for batch size B and W ranks, and rank r takes its B consecutive ones. So
    ranks see different photos and crops; the stream is the same for any number of workers; and
    a run resumed at generator step s continues exactly where it stopped by starting at batch s.
    Yields (photo index, crop seed) keys for PhotoDataset.
    """

    def __init__(
        self,
        n_files: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.n_files = n_files
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, order = -1, torch.empty(0, dtype=torch.long)
        batch = self.start
        while True:
            first = (batch * self.world_size + self.rank) * self.batch_size
            for position in range(first, first + self.batch_size):
                if position // self.n_files != epoch:
                    epoch = position // self.n_files
                    order = torch.randperm(
                        self.n_files, generator=seeded_generator(self.seed, "order", epoch)
                    )
                photo = int(order[position % self.n_files])
                yield photo, derived_seed(self.seed, "crop", position)
            batch += 1


def ignore_requeue_signals(worker_id: int) -> None:
    """DataLoader worker_init_fn. SLURM signals every process of a job step, workers included,
    and a forked worker inherits the trainer's Python handlers: on the requeue signal it would
    run Lightning's checkpoint-and-requeue code (SIGUSR1) or submitit's (SIGUSR2), and on
    SIGTERM Lightning's shutdown code; Ctrl-C (SIGINT) reaches the whole process group and
    would kill a worker mid-batch. Workers ignore them; the main process decides and stops
    its workers itself."""
    for name in ("SIGUSR1", "SIGUSR2", "SIGTERM", "SIGINT"):
        if hasattr(signal, name):  # no SIGUSR1/2 on Windows
            signal.signal(getattr(signal, name), signal.SIG_IGN)


class PhotoDataModule(L.LightningDataModule):
    """Training crops from data.source, and a fixed list of validation photos for image grids."""

    def __init__(
        self, cfg: DataConfig, data_dir: Path, seed: int = 0, start_batch: int = 0
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.data_dir = data_dir
        self.seed = seed
        self.start_batch = start_batch  # a resumed run: its generator step
        self.train_files = self._train_files()
        if len(self.train_files) < cfg.batch_size:
            raise ConfigError(
                f"data.batch_size={cfg.batch_size} is larger than the {len(self.train_files)} "
                f"training photos found; lower data.batch_size or add photos"
            )
        self._check_enough_readable()
        self.val_files = self._val_files()

    def _check_enough_readable(self) -> None:
        """Decode photos in order until data.batch_size of them have been read: a folder of
        broken files fails here, at start-up with one line, not in a loader worker later. (The
        whole folder is not decoded: a large dataset would take minutes; later broken files
        are skipped by PhotoDataset as they come.)"""
        need, readable, problems = self.cfg.batch_size, 0, []
        for path in self.train_files:
            try:
                load_image(path)
            except ImageError as err:
                problems.append(str(err))
                continue
            readable += 1
            if readable >= need:
                return
        where = self.cfg.root or self.cfg.source
        raise ConfigError(
            f"data.root={where}: only {readable} of {len(self.train_files)} photos can be read, "
            f"fewer than data.batch_size={need}; first problem: {problems[0]}"
        )

    def _train_files(self) -> list[Path]:
        cfg = self.cfg
        if cfg.source == "samples":
            return sample_photos()
        root = Path(cfg.root) if cfg.root else self.data_dir / "coco" / "train2017"
        if not root.is_dir():
            if cfg.source == "coco":
                raise ConfigError(
                    f"COCO not found at {root}; get it with: {COCO_HELP.format(root=root.parent)}"
                    " (or point data.root at the folder)"
                )
            raise ConfigError(f"data.root={root} is not a folder")
        files = list_images(root)
        if not files:
            raise ConfigError(
                f"data.root={root} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        return files

    def _val_files(self) -> list[Path]:
        if self.cfg.val_root:
            root = Path(self.cfg.val_root)
            files = list_images(root) if root.is_dir() else []
            if not files:
                raise ConfigError(f"data.val_root={root} holds no images")
        else:
            files = self.train_files
        return files[: self.cfg.val_count]

    def val_images(self) -> list[torch.Tensor]:
        """The fixed validation photos, RGB [0,1] [1,3,H,W] at data.val_size long side."""
        images = []
        for path in self.val_files:
            try:
                images.append(load_image(path, size=self.cfg.val_size))
            except ImageError as err:
                log.warning("validation photo skipped: %s", err)
        return images

    def train_dataloader(self) -> DataLoader:
        """This rank's endless stream of batches (data.batch_size per rank), from start_batch."""
        cfg = self.cfg
        dataset = PhotoDataset(self.train_files, cfg.image_size, tuple(cfg.resize_long_side))
        trainer = self.trainer
        stream = PhotoStream(
            len(self.train_files),
            cfg.batch_size,
            self.seed,
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1,
            start=self.start_batch,
        )
        return DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            sampler=stream,
            num_workers=cfg.num_workers,
            worker_init_fn=ignore_requeue_signals,
            persistent_workers=cfg.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )
