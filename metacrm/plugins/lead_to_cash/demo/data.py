"""The demo company's names, catalogue and campaigns, and how its deals are spread over the
stages."""

BUS = [("hardware", "Hardware", "硬件"), ("software", "Software", "软件"), ("it_services", "IT services", "IT服务"),
       ("solutions", "Industry solutions", "行业解决方案")]
SURNAMES = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Xu", "Sun", "Hu", "Zhu",
            "Gao", "Lin", "He", "Guo", "Ma", "Luo"]
GIVEN = ["Wei", "Fang", "Min", "Jing", "Lei", "Jun", "Yan", "Tao", "Hui", "Qiang", "Li", "Ping", "Gang", "Hong",
         "Xin", "Yu", "Bo", "Ning", "Chao", "Lan"]
PREFIXES = ["Huaxin", "Zhongke", "Tianrui", "Jinqiao", "Hengtai", "Xinda", "Dongfang", "Changjiang", "Minsheng",
            "Haitong", "Ruifeng", "Boyuan", "Shenghua", "Guoan", "Kaiyuan", "Hongtu", "Yuanda", "Zhongxing",
            "Huamei", "Tongda", "Jiahe", "Longsheng", "Xinghai", "Baichuan", "Fuxing", "Anbang", "Dingsheng",
            "Wanli", "Qianhai", "Taihe"]
SECTORS = [("Bank", "finance"), ("Securities", "finance"), ("Insurance", "finance"), ("Telecom", "telecom"),
           ("Mobile Networks", "telecom"), ("Municipal Services", "government"), ("Customs Bureau", "government"),
           ("Steel", "manufacturing"), ("Auto Parts", "manufacturing"), ("Textiles", "manufacturing"),
           ("Electronics", "manufacturing"), ("Retail", "retail"), ("Supermarkets", "retail"),
           ("Logistics", "other")]
SUFFIXES = ["Co., Ltd.", "Group", "Corporation", "Holdings", "Co., Ltd."]
PROJECTS = ["ERP upgrade", "Data centre refresh", "Cloud migration", "Branch network", "Security audit",
            "Storage expansion", "Core banking integration", "CRM rollout", "Video conferencing", "Backup and DR",
            "Smart factory MES", "Desktop virtualisation", "Billing system", "Data warehouse", "IoT pilot",
            "Office network", "Call centre", "Mobile app", "AI inspection", "Server consolidation"]
PHASES = ["Phase I", "Phase II", "Phase III", "2025", "2026"]
PRODUCTS = [
    ("SRV-R740", "Rack server R740", "hardware", "48000"), ("SRV-B100", "Blade chassis B100", "hardware", "220000"),
    ("STO-A800", "All-flash storage A800", "hardware", "360000"), ("NET-S58", "Core switch S58", "hardware", "85000"),
    ("SW-ERP", "ERP suite (per 10 users)", "software", "120000"), ("SW-DB", "Database licence", "software", "68000"),
    ("SW-SEC", "Endpoint security (100 seats)", "software", "32000"),
    ("SVC-IMPL", "Implementation (person-day)", "it_services", "2800"),
    ("SVC-OPS", "Managed operations (month)", "it_services", "45000"),
    ("SVC-TRN", "Training course", "it_services", "9000"),
    ("SOL-BANK", "Core banking solution", "solutions", "1500000"),
    ("SOL-MES", "Smart factory MES", "solutions", "880000"),
]
CAMPAIGNS = [  # name, channel, budget, actual cost, days from today (start), status
    ("Shanghai IT Expo", "offline_event", "180000", "172500", -150, "completed"),
    ("Search ads H1", "search", "90000", "88200", -170, "completed"),
    ("Industry web banners", "web_ad", "60000", "51300", -120, "completed"),
    ("CIO newsletter", "email", "15000", "12800", -100, "completed"),
    ("WeChat mini-program", "mobile", "40000", "36600", -80, "active"),
    ("Finance roundtable Beijing", "offline_event", "120000", "98000", -60, "completed"),
    ("Manufacturing 4.0 tour", "offline_event", "150000", "64000", -20, "active"),
    ("Trade press ads", "print", "30000", "30000", -140, "completed"),
    ("Search ads H2", "search", "90000", "21000", -10, "active"),
]
CHANNEL_SOURCE = {"offline_event": "offline_event", "search": "search", "web_ad": "web_ad", "email": "email",
                  "mobile": "mobile", "print": "web", "tv": "web"}
STAGE_MIX = [("qualification", 20), ("research", 20), ("trial", 18), ("negotiation", 14), ("won", 16), ("lost", 12)]
REASONS_WON = ["relationship", "product_fit", "price", "timing"]
REASONS_LOST = ["price", "competitor", "no_budget", "timing", "product_fit"]
