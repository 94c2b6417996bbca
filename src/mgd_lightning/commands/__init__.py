"""Commands of ``mgd-lightning`` beyond LightningCLI's: each module has ``main(args)``."""

__all__: list[str] = []
