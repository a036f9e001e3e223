"""What the SunSpec simulator's models show: one render function per model, from the plant's state.

Each function writes its model's points (through the simulator's ``_set``, scaled by ``SF``) from the
PV output, the grid power and the battery. The 7xx DER models show the same plant as the 1xx ones:
701 measures the PV inverter's AC output, 702 its ratings, 704 mirrors the output limit, 713 the
battery's energy and state of charge.
"""

from __future__ import annotations

from typing import Any

SF = {  # the scale factors this device reports
    103: {"A_SF": -1, "V_SF": -1, "W_SF": 1, "Hz_SF": -2, "VA_SF": 1, "VAr_SF": 1, "PF_SF": -1, "WH_SF": 0,
          "DCA_SF": -1, "DCV_SF": -1, "DCW_SF": 1, "Tmp_SF": -1},
    123: {"WMaxLimPct_SF": 0, "OutPFSet_SF": -3, "VArPct_SF": 0},
    124: {"WChaMax_SF": 1, "WChaDisChaGra_SF": 0, "VAChaMax_SF": 1, "MinRsvPct_SF": 0, "ChaState_SF": -1,
          "StorAval_SF": 0, "InBatV_SF": -1, "InOutWRte_SF": -1},
    802: {"AHRtg_SF": 0, "WHRtg_SF": 2, "WChaDisChaMax_SF": 1, "DisChaRte_SF": 0, "SoC_SF": -1, "DoD_SF": -1,
          "SoH_SF": 0, "V_SF": -1, "CellV_SF": -3, "A_SF": -1, "AMax_SF": 0, "W_SF": 1},
    203: {"A_SF": -1, "V_SF": -1, "Hz_SF": -2, "W_SF": 1, "VA_SF": 1, "VAR_SF": 1, "PF_SF": -1, "TotWh_SF": 0,
          "TotVAh_SF": 0, "TotVArh_SF": 0},
    701: {"A_SF": -1, "V_SF": -1, "Hz_SF": -2, "W_SF": 1, "PF_SF": -3, "VA_SF": 1, "Var_SF": 1, "TotWh_SF": 0,
          "TotVarh_SF": 0, "Tmp_SF": -1},
    702: {"W_SF": 1, "PF_SF": -3, "VA_SF": 1, "Var_SF": 1, "V_SF": -1, "A_SF": -1, "S_SF": 0},
    704: {"PF_SF": -3, "WMaxLimPct_SF": -1, "WSet_SF": 0, "WSetPct_SF": -1, "VarSet_SF": 0, "VarSetPct_SF": -1},
    713: {"WH_SF": 2, "Pct_SF": -1},
}
V = 230.0  # phase voltage


def _nothing(sim: Any, pv: float, grid: float) -> None:
    """Model 1 (common) is written once, at start."""


def _inverter_103(sim: Any, pv: float, grid: float) -> None:
    s = sim._set
    s(103, "W", pv)
    s(103, "A", pv / V / 3)
    for ph in "ABC":
        s(103, f"Aph{ph}", pv / V / 3)
        s(103, f"PhVph{ph}", V)
    s(103, "Hz", 50.0)
    s(103, "WH", sim.pv_wh)
    s(103, "DCW", pv / 0.97)
    s(103, "TmpCab", 35.0)
    s(103, "St", sim.state())


def _controls_123(sim: Any, pv: float, grid: float) -> None:
    sim._set(123, "WMaxLimPct", sim.limit_pct)
    sim._set(123, "WMaxLim_Ena", 1 if sim.limit_on else 0)


def _storage_124(sim: Any, pv: float, grid: float) -> None:
    b, s = sim.battery, sim._set
    s(124, "WChaMax", b.max_charge_w)
    s(124, "ChaState", b.soc * 100)
    s(124, "ChaSt", 5 if b.soc >= b.soc_max else 2 if b.soc <= b.soc_min else
      4 if b.power_w < 0 else 3 if b.power_w > 0 else 6)
    s(124, "MinRsvPct", b.soc_min * 100)


def _battery_802(sim: Any, pv: float, grid: float) -> None:
    b, s = sim.battery, sim._set
    s(802, "WHRtg", b.capacity_wh)
    s(802, "WChaRteMax", b.max_charge_w)
    s(802, "WDisChaRteMax", b.max_discharge_w)
    s(802, "SoCMax", b.soc_max * 100)
    s(802, "SoCMin", b.soc_min * 100)
    s(802, "SoC", b.soc * 100)
    s(802, "SoH", 98)
    s(802, "V", 600.0)
    s(802, "A", b.power_w / 600.0)
    s(802, "W", b.power_w)


def _meter_203(sim: Any, pv: float, grid: float) -> None:
    s = sim._set
    s(203, "W", grid)
    for ph in "ABC":
        s(203, f"Wph{ph}", grid / 3)
        s(203, f"PhVph{ph}", V)
        s(203, f"Aph{ph}", grid / V / 3)
    s(203, "A", grid / V)
    s(203, "PhV", V)
    s(203, "Hz", 50.0)
    s(203, "TotWhImp", sim.import_wh)
    s(203, "TotWhExp", sim.export_wh)


def _der_701(sim: Any, pv: float, grid: float) -> None:
    s = sim._set
    s(701, "ACType", 2)  # three phase
    s(701, "St", 1)
    s(701, "InvSt", sim.state() - 1)  # 701 counts from 0 (off) where 103 counts from 1
    s(701, "ConnSt", 1)
    s(701, "W", pv)
    s(701, "VA", pv)
    s(701, "Var", 0.0)
    s(701, "PF", 1.0)
    s(701, "A", pv / V / 3)
    s(701, "LLV", V * 3 ** 0.5)
    s(701, "LNV", V)
    s(701, "Hz", 50.0)
    s(701, "TotWhInj", sim.pv_wh)
    s(701, "TmpCab", 35.0)
    for ph in "123":
        s(701, f"WL{ph}", pv / 3)
        s(701, f"AL{ph}", pv / V / 3)
        s(701, f"VL{ph}", V)


def _der_702(sim: Any, pv: float, grid: float) -> None:
    b, s = sim.battery, sim._set
    for name in ("WMaxRtg", "WMax", "VAMaxRtg", "VAMax"):
        s(702, name, sim.pv.peak_w)
    s(702, "WChaRteMaxRtg", b.max_charge_w)
    s(702, "WDisChaRteMaxRtg", b.max_discharge_w)
    s(702, "WChaRteMax", b.max_charge_w)
    s(702, "WDisChaRteMax", b.max_discharge_w)
    s(702, "VNomRtg", V)
    s(702, "VNom", V)


def _der_704(sim: Any, pv: float, grid: float) -> None:
    sim._set(704, "WMaxLimPct", sim.limit_pct)
    sim._set(704, "WMaxLimPctEna", 1 if sim.limit_on else 0)


def _der_713(sim: Any, pv: float, grid: float) -> None:
    b, s = sim.battery, sim._set
    s(713, "WHRtg", b.capacity_wh)
    s(713, "WHAvail", max(0.0, b.soc - b.soc_min) * b.capacity_wh)
    s(713, "SoC", b.soc * 100)
    s(713, "SoH", 98)
    s(713, "Sta", 0)  # OK


RENDER = {1: _nothing, 103: _inverter_103, 123: _controls_123, 124: _storage_124, 802: _battery_802,
          203: _meter_203, 701: _der_701, 702: _der_702, 704: _der_704, 713: _der_713}
