"""Reports that a single aggregate cannot express (GET /api/v1/reports/{name}), and the
dashboard widgets. Every one counts only what the caller may report on (the `report`
scope of their roles, or `read` where a role gives none)."""

from __future__ import annotations

from . import adjustments, aging, campaign_roi, commission_statement, forecast, opportunity_analytics
from .widgets import WIDGETS

__all__ = ["REPORTS", "WIDGETS", "adjustments"]

REPORTS = {
    "forecast": (forecast.forecast, {"en": "Sales forecast", "zh-CN": "销售预测"}),
    "campaign_roi": (campaign_roi.campaign_roi, {"en": "Campaign ROI and funnel", "zh-CN": "营销ROI与漏斗"}),
    "opportunity_analytics": (opportunity_analytics.opportunity_analytics,
                              {"en": "Opportunity analytics", "zh-CN": "商机分析"}),
    "aging": (aging.aging, {"en": "Receivables aging", "zh-CN": "应收账龄"}),
    "commission_statement": (commission_statement.commission_statement,
                             {"en": "Commission statement", "zh-CN": "提成对账单"}),
}
