"""A 2-process DDP training job (CPU, gloo) with ``EMLogger()``, run by tests/test_lightning.py.

``python lightning_ddp_job.py`` lets Lightning launch the second process itself;
``torchrun --nproc_per_node=2 lightning_ddp_job.py`` launches both. Runs go to
``$EM_RUN_PARENT_DIR``. Each rank checks that it sees the Run (rank 0) or the dummy experiment.
"""

from lightning.pytorch import Callback, Trainer
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers.logger import DummyExperiment

from t9k.em.lightning import EMLogger
from t9k_em_core.run import Run


class DDPModel(BoringModel):
    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()

    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        self.log('train_loss', out['loss'], sync_dist=True)
        return out


class ExperimentPerRank(Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        expected = Run if trainer.is_global_zero else DummyExperiment
        assert isinstance(trainer.logger.experiment, expected), trainer.logger.experiment


if __name__ == '__main__':
    trainer = Trainer(strategy='ddp', accelerator='cpu', devices=2, max_epochs=1,
                      limit_train_batches=3, limit_val_batches=1, log_every_n_steps=1,
                      enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False, logger=EMLogger(),
                      callbacks=[ExperimentPerRank()])
    trainer.fit(DDPModel())
