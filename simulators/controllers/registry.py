"""Controllers by name, as a scenario's ``therapy.controller`` section names them.

Each section is ``{algorithm: NAME, ...settings}``; pydantic checks it, so a bad setting is
reported by field (``therapy.controller.kp_per_h: Input should be greater than or equal to 0``)
before anything runs. The settings common to every algorithm are the AID system's targets and
safety limits (`simulators.closed_loop.AidSettings`).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from cgm_ray.config import Strict
from cgm_ray.errors import ConfigError
from simulators.controllers.basal_bolus import BasalBolus
from simulators.controllers.interface import HISTORY_SLOTS, AidSettings, Controller
from simulators.controllers.loop_reference import LoopReference, LoopSettings
from simulators.controllers.oref0_loop import Oref0Controller, Oref0ReferenceController, Oref0Settings
from simulators.controllers.pid import Pid, PidGains
from simulators.controllers.policy import PolicyController, load_policy


class ControllerConfig(Strict):
    """Targets and limits every AID system has."""

    closes_loop: ClassVar[bool] = True  # the engine decides every 5 min (basal_bolus: never)

    target_mgdl: float = Field(AidSettings.target_mgdl, ge=80, le=180, description="the glucose target")
    suspend_below_mgdl: float = Field(AidSettings.suspend_below_mgdl, ge=40, le=120,
                                      description="low-glucose suspend threshold")
    max_basal_multiple: float = Field(AidSettings.max_basal_multiple, gt=0, le=10,
                                      description="max temp basal / scheduled basal")
    max_iob_u: float | None = Field(None, ge=0, le=100,
                                   description="default: a 60 g meal's bolus + 3 h of basal")
    max_bolus_u: float = Field(AidSettings.max_bolus_u, gt=0, le=50)

    def aid(self) -> AidSettings:
        return AidSettings(self.target_mgdl, self.suspend_below_mgdl, self.max_basal_multiple,
                           self.max_iob_u, self.max_bolus_u)


class BasalBolusConfig(ControllerConfig):
    algorithm: Literal["basal_bolus"] = "basal_bolus"
    closes_loop: ClassVar[bool] = False

    def build(self) -> Controller:
        return BasalBolus()


class PidConfig(ControllerConfig):
    algorithm: Literal["pid"]
    kp_per_h: float = Field(PidGains.kp_per_h, ge=0, le=10)
    ki_per_h2: float = Field(PidGains.ki_per_h2, ge=0, le=10)
    kd: float = Field(PidGains.kd, ge=0, le=10)
    kf_per_h: float = Field(PidGains.kf_per_h, ge=0, le=10)
    integral_limit_u_h: float = Field(PidGains.integral_limit_u_h, ge=0, le=100)

    def build(self) -> Controller:
        return Pid(PidGains(self.kp_per_h, self.ki_per_h2, self.kd, self.kf_per_h, self.integral_limit_u_h))


class Oref0Config(ControllerConfig):
    algorithm: Literal["oref0"]
    enable_smb: bool = False
    enable_uam: bool = False
    record_predictions: bool = False

    def settings(self) -> Oref0Settings:
        return Oref0Settings(self.enable_smb, self.enable_uam, self.record_predictions)

    def build(self) -> Controller:
        return Oref0Controller(self.settings())


class Oref0ReferenceConfig(Oref0Config):
    algorithm: Literal["oref0_reference"]  # type: ignore[assignment]
    timeout_s: float = Field(60.0, gt=0, le=3600, description="a worker slower than this fails the period")

    def build(self) -> Controller:
        return Oref0ReferenceController(self.settings(), self.timeout_s)


class LoopReferenceConfig(ControllerConfig):
    algorithm: Literal["loop_reference"]
    dia_h: float = Field(6.0, gt=0, le=24, description="Loop's insulin model: duration of action")
    peak_min: float = Field(75.0, gt=0, le=120, description="Loop's insulin model: peak (child: 65)")
    carb_absorption_min: float = Field(180.0, gt=0, le=1440)
    retrospective_correction: bool = True
    automatic_bolus: bool = Field(False, description="Loop 3's automatic-bolus dosing strategy")
    partial_application_factor: float = Field(0.4, gt=0, le=1)

    def build(self) -> Controller:
        return LoopReference(LoopSettings(
            peak_min=self.peak_min, dia_h=self.dia_h, carb_absorption_min=self.carb_absorption_min,
            retrospective_correction=self.retrospective_correction, automatic_bolus=self.automatic_bolus,
            partial_application_factor=self.partial_application_factor))


class PolicyConfig(ControllerConfig):
    algorithm: Literal["policy"]
    policy: str = Field(description="module:attribute of a callable obs -> U/h, or of an object with "
                        "Stable-Baselines3's predict(); it sees T1DEnv's observation")
    history: int = Field(12, ge=1, le=HISTORY_SLOTS, description="CGM readings observed")

    @field_validator("policy")
    @classmethod
    def _loads(cls, v: str) -> str:
        try:
            load_policy(v)
        except ConfigError as exc:
            raise ValueError(exc.message) from None
        return v

    def build(self) -> Controller:
        return PolicyController(load_policy(self.policy), self.history)


ControllerSpec = Annotated[BasalBolusConfig | PidConfig | Oref0Config | Oref0ReferenceConfig
                           | LoopReferenceConfig | PolicyConfig, Field(discriminator="algorithm")]
