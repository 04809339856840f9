-- Help centre: FAQ articles (zh and en, translations share a slug), search statistics and deflection attempts.

CREATE TABLE help_articles (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Idempotency of CreateArticle; NULL for articles seeded here.
    request_id  text        UNIQUE,
    locale      text        NOT NULL CHECK (locale IN ('zh', 'en')),
    slug        text        NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 80),
    title       text        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body        text        NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
    category    text        NOT NULL CHECK (category IN (
                    'payment_failed', 'account_locked', 'account_frozen', 'suspicious_activity', 'password_reset',
                    'bank_card', 'transaction_query', 'beta_access', 'complaint', 'other')),
    tags        text[]      NOT NULL DEFAULT '{}',
    published   boolean     NOT NULL,
    -- Bumped by every update: (count, sum(version)) tells a replica its in-memory index is stale.
    version     bigint      NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (locale, slug)
);

-- One row per normalised, redacted query and locale; hits = results of the latest search (0: a gap).
CREATE TABLE help_searches (
    query        text        NOT NULL CHECK (length(query) BETWEEN 1 AND 200),
    locale       text        NOT NULL CHECK (locale IN ('zh', 'en')),
    hits         integer     NOT NULL,
    search_count bigint      NOT NULL,
    first_at     timestamptz NOT NULL,
    last_at      timestamptz NOT NULL,
    PRIMARY KEY (query, locale)
);

CREATE INDEX help_searches_gaps ON help_searches (search_count DESC, query, locale) WHERE hits = 0;

-- Suggestions shown before a ticket is opened. The ticket's text is never stored here.
CREATE TABLE help_suggestions (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    locale        text        NOT NULL,
    category      text,
    article_slugs text[]      NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

INSERT INTO help_articles (locale, slug, category, tags, published, title, body) VALUES

('en', 'reset-password', 'password_reset', '{forgot password, sign in, login, payment password, pin}', true,
 'Reset a forgotten password',
$b$If you cannot remember your sign-in or payment password, you can set a new one yourself in a few minutes.

1. On the sign-in screen, tap **Forgot password**.
2. Enter the phone number or email address of your account, then the verification code we send to it.
3. Confirm it is you (a face check, or details of a card linked to the account) and choose a new password.

Tips:
- Pick a password you use nowhere else.
- No code? Check the number or address, wait a minute, then tap **Resend**. Emails sometimes land in spam.
- Too many wrong tries lock sign-in for a while; see "Account locked".

Support will never ask you for a password, a verification code, your recovery phrase or a private key.$b$),

('zh', 'reset-password', 'password_reset', '{忘记密码, 找回密码, 登录密码, 支付密码, 修改密码}', true,
 '忘记密码怎么重置',
$b$忘记了登录密码或支付密码，可以自己在几分钟内设置新密码。

1. 在登录页点击 **忘记密码**。
2. 输入账户绑定的手机号或邮箱，再填入收到的验证码。
3. 完成身份确认（人脸验证，或账户已绑定银行卡的信息），然后设置新密码。

小提示：
- 新密码不要和其他网站、应用的密码相同。
- 收不到验证码？先核对号码或邮箱，等一分钟再点 **重新发送**；邮件可能在垃圾箱里。
- 输错次数过多会暂时锁定登录，请看「账户被锁定」。

客服绝不会向您索要密码、验证码、助记词或私钥。$b$),

('en', 'account-locked', 'account_locked', '{locked out, cannot sign in, too many attempts, blocked}', true,
 'Account locked after too many attempts',
$b$To protect you, the wallet locks sign-in after repeated wrong passwords or verification codes, or when a sign-in looks unusual (a new device or country).

- A temporary lock lifts by itself; the app shows how long is left. Each new failed try makes it longer, so wait rather than guess.
- Forgot the password? Resetting it (see "Reset a forgotten password") also lifts the lock.
- Still locked, or you did not try to sign in yourself? Contact us: an agent checks your identity and unlocks the account. If someone else caused the lock, change your password straight afterwards.$b$),

('zh', 'account-locked', 'account_locked', '{无法登录, 登录不了, 锁定, 输错密码}', true,
 '账户被锁定，无法登录',
$b$为了保护您的资金，密码或验证码连续输错，或者登录情况异常（新设备、新的国家或地区）时，钱包会暂时锁定登录。

- 临时锁定会自动解除，应用里会显示剩余时间。继续乱试会延长锁定，请耐心等待。
- 如果是忘了密码，按「忘记密码怎么重置」重设密码，锁定也会随之解除。
- 仍然被锁，或者并不是您本人在尝试登录？请联系客服，人工核实身份后为您解锁。如果是别人触发的锁定，解锁后请立即修改密码。$b$),

('en', 'account-frozen', 'account_frozen', '{unfreeze, frozen, restricted, suspended, cannot pay}', true,
 'Account frozen: why it happens and how to unfreeze it',
$b$While an account is frozen you cannot pay, transfer or withdraw, but the money in it stays yours and stays safe.

Why accounts are frozen:
- a security check after suspicious activity;
- you asked us to freeze it (for example after losing your phone);
- identity verification is missing or has expired;
- a request from a bank, a court or another authority.

How to unfreeze:
1. Open the app: the notice on the home screen says why the account is frozen and what is needed.
2. If asked, complete identity verification (ID document and a selfie).
3. If you froze it yourself, sign in on a trusted device and choose **Unfreeze**, or ask an agent.
4. Otherwise, contact us with the category "account frozen". These tickets are urgent and reach a person within minutes; the agent tells you what the review needs and how long it takes.

Unfreezing is always free. Anyone asking for a fee or for your recovery phrase to unfreeze an account is a scammer.$b$),

('zh', 'account-frozen', 'account_frozen', '{解冻, 冻结, 账户冻结, 账号冻结, 受限, 无法付款}', true,
 '账户被冻结的原因和解冻方法',
$b$账户冻结期间无法付款、转账或提现，但账户里的资金仍然属于您，并且是安全的。

常见的冻结原因：
- 发现可疑活动后进行的安全审查；
- 您本人申请冻结（例如手机丢失后）；
- 身份认证未完成或已过期；
- 银行、司法或其他机关的要求。

如何解冻：
1. 打开应用，首页的提示会说明冻结原因和需要的材料。
2. 如有要求，完成身份认证（证件和自拍）。
3. 如果是您自己申请的冻结，在常用设备上登录后点击 **解冻**，也可以请客服处理。
4. 其他情况请联系客服，问题类型选「账户冻结」。这类工单属于紧急工单，几分钟内就有人工客服接手，并告诉您审核需要什么、多久完成。

解冻完全免费。任何以收费或索要助记词为条件帮您解冻的人都是骗子。$b$),

('en', 'secure-your-account', 'suspicious_activity', '{hacked, fraud, scam, unknown payment, recovery phrase, private key, seed phrase, phishing}', true,
 'Suspicious activity: securing your account',
$b$Seeing a payment you do not recognise, a sign-in from a device you do not know, or a message that claims to come from us? Act now:

1. Change your password and sign out all other devices (**Security > Devices**).
2. Go through your recent transactions and note anything you did not do.
3. Contact us in the app with the category "suspicious activity". A person answers within minutes and can freeze the account while we investigate.
4. Turn on two-step verification.

**We will never ask for your recovery phrase (the 12 or 24 words), your private key, a password, a verification code or your full card number**, not in chat, by phone, by email or on social media. Whoever asks for them is a scammer: do not share them, and tell us.$b$),

('zh', 'secure-your-account', 'suspicious_activity', '{被盗, 盗号, 诈骗, 陌生交易, 助记词, 私钥, 钓鱼, 账户异常}', true,
 '发现可疑活动，如何保护账户安全',
$b$看到不认识的付款、陌生设备的登录，或者有人自称是我们的客服联系您？请马上：

1. 修改密码，并退出其他所有设备（**安全 > 设备管理**）。
2. 查看最近的交易记录，记下不是您本人操作的交易。
3. 在应用里联系客服，问题类型选「可疑活动」。人工客服几分钟内回复，必要时先冻结账户再调查。
4. 开启两步验证。

**我们绝不会索要您的助记词（12 或 24 个单词）、私钥、密码、验证码或完整卡号**，无论是在线聊天、电话、邮件还是社交媒体。索要这些信息的都是骗子：请不要提供，并告诉我们。$b$),

('en', 'payment-failed', 'payment_failed', '{declined, payment error, checkout, charged twice, insufficient balance}', true,
 'A payment failed',
$b$Common reasons: not enough balance, the card was declined by its bank, a daily limit was reached, a wrong payment password, a network time-out, or a problem on the merchant's side.

What to do:
- Read the message or error code the app showed; it usually names the reason.
- Open **Transactions**. "Failed" means no money moved. If money left your account but the merchant did not confirm the order, it comes back automatically; see "When will I get my refund?".
- While a payment still says "Processing", do not pay again: wait for the final status so you are not charged twice.
- If it keeps failing, contact us with the time, amount, merchant and error code.$b$),

('zh', 'payment-failed', 'payment_failed', '{付款失败, 支付失败, 扣款, 重复扣款, 余额不足, 错误代码}', true,
 '付款失败怎么办',
$b$常见原因：余额不足、银行拒绝了这张卡、超过每日限额、支付密码错误、网络超时，或者商户那边出了问题。

处理方法：
- 先看应用显示的提示或错误代码，通常已经说明了原因。
- 打开 **交易记录**。显示「失败」表示钱没有被扣。如果钱已扣但商户没有确认订单，款项会自动退回，请看「退款多久到账」。
- 付款还在「处理中」时不要重复付款，等结果出来，以免被扣两次。
- 如果一直失败，请联系客服，并提供时间、金额、商户名称和错误代码。$b$),

('en', 'transfer-pending-or-failed', 'transaction_query', '{transfer, pending, stuck, not received, transaction reference, transaction id, withdrawal}', true,
 'A transfer is pending or failed: what to send us',
$b$A transfer stays **pending** while the receiving bank or network confirms it. Most complete within minutes; transfers to bank accounts can take until the end of the next business day. A transfer that **fails** returns the money to your balance.

If a transfer looks stuck or the recipient has not received it, send us its **transaction reference**:
1. Open **Transactions** and tap the transfer.
2. Copy the reference (also called transaction ID) at the bottom of the details page.
3. Add the amount, date and time, and who you sent it to.

With the reference an agent finds the transfer at once, without asking you again. The reference is all we need: never send a password or your recovery phrase.$b$),

('zh', 'transfer-pending-or-failed', 'transaction_query', '{转账, 处理中, 未到账, 转账失败, 交易单号, 交易编号, 提现}', true,
 '转账一直处理中或失败，需要提供哪些信息',
$b$转账在收款银行或网络确认之前会显示 **处理中**。大多数几分钟内完成；转到银行账户的，最晚可能要到下一个工作日结束。转账 **失败** 时，钱会退回您的余额。

如果转账一直没有完成，或者对方没收到，请把 **交易单号** 发给我们：
1. 打开 **交易记录**，点击这笔转账。
2. 复制详情页底部的交易单号（也叫交易编号）。
3. 同时写明金额、日期时间和收款人。

有了交易单号，客服可以马上找到这笔转账，不用反复询问。我们只需要交易单号，请不要发送密码或助记词。$b$),

('en', 'link-bank-card', 'bank_card', '{bank card, add card, bind card, card not linking, card verification, debit card, credit card}', true,
 'Linking a bank card fails',
$b$Check these first:
- The card is in your own name, the same name as your verified wallet account.
- The card number, expiry date and the phone number registered with your bank are correct.
- The card is active, not expired, and not blocked for online payments.
- The bank's SMS code arrived and was used in time; request a new one if it expired.
- Your identity verification in the wallet is complete.

Some banks block linking to wallets until you allow it; your bank's app or hotline can switch that on. If the card still will not link, note the exact error message and contact us with the category "bank card".$b$),

('zh', 'link-bank-card', 'bank_card', '{银行卡, 绑卡, 绑定银行卡, 添加银行卡, 绑卡失败, 储蓄卡, 信用卡}', true,
 '绑定银行卡失败怎么办',
$b$请先检查：
- 银行卡是您本人名下的，姓名与钱包实名认证的一致。
- 卡号、有效期和银行预留手机号填写正确。
- 卡片处于正常状态，没有过期，也没有关闭网上支付功能。
- 银行发来的短信验证码按时填写了；过期了就重新获取。
- 钱包里的身份认证已经完成。

有些银行默认不允许绑定到钱包，需要在银行应用或客服电话里开通。如果仍然绑不上，请记下完整的错误提示，联系客服并选择「银行卡」类型。$b$),

('en', 'remove-bank-card', 'bank_card', '{unlink card, delete card, remove card, lost card}', true,
 'Removing a linked bank card',
$b$1. Go to **Me > Bank cards** and choose the card.
2. Tap **Remove** and confirm with your payment password.

Payments already in progress with that card finish first. If the card paid for subscriptions or automatic payments, choose another default card before removing it.

Removing a card from the wallet does not cancel it at your bank. Lost the card? Call your bank to block it first, then remove it here.$b$),

('zh', 'remove-bank-card', 'bank_card', '{解绑, 解绑银行卡, 删除银行卡, 银行卡丢失}', true,
 '如何解绑银行卡',
$b$1. 进入 **我的 > 银行卡**，选择要解绑的卡。
2. 点击 **解除绑定**，输入支付密码确认。

正在处理中的付款会先完成。如果这张卡用于订阅或自动扣款，解绑前请先设置另一张默认卡。

在钱包里解绑不会注销银行卡本身。卡丢了？请先打电话给银行挂失，再来这里解绑。$b$),

('en', 'check-transaction', 'transaction_query', '{transaction history, statement, payment record, receipt, status}', true,
 'Checking a transaction',
$b$**Transactions** on the home screen lists everything you paid, received, topped up and withdrew, newest first. Filter by date, type or amount to find one quickly.

Tap a transaction to see its status (processing, successful, failed or refunded), fees, the other party and its transaction reference. From there you can share a receipt or download a monthly statement.

Do not recognise a transaction? See "Suspicious activity: securing your account".$b$),

('zh', 'check-transaction', 'transaction_query', '{交易记录, 账单, 查询交易, 付款记录, 收据, 交易状态}', true,
 '如何查询交易记录',
$b$首页的 **交易记录** 会按时间倒序列出所有付款、收款、充值和提现。可以按日期、类型或金额筛选，快速找到某一笔。

点开一笔交易，可以看到状态（处理中、成功、失败或已退款）、手续费、对方信息和交易单号，还可以分享收据或下载月度账单。

发现不认识的交易？请看「发现可疑活动，如何保护账户安全」。$b$),

('en', 'refund-timing', 'transaction_query', '{refund, money back, return, reversed, chargeback}', true,
 'When will I get my refund?',
$b$A refund goes back the way you paid:
- to your wallet balance: usually within minutes, at most one day;
- to a bank card: usually 3 to 10 business days, depending on your bank.

For purchases, the merchant decides on and starts the refund; we cannot refund a merchant's sale for them. Follow it in **Transactions**, where the original payment shows "Refunded".

If the merchant confirmed the refund and nothing has arrived after 10 business days, contact us with the transaction reference.$b$),

('zh', 'refund-timing', 'transaction_query', '{退款, 退钱, 退回, 退款到账, 原路退回}', true,
 '退款多久到账',
$b$退款按原支付方式退回：
- 退回钱包余额：通常几分钟内到账，最长一天；
- 退回银行卡：通常 3 到 10 个工作日，视银行而定。

购物退款由商户决定并发起，我们无法替商户办理退款。可以在 **交易记录** 里跟踪进度，原付款会显示「已退款」。

如果商户已确认退款，超过 10 个工作日仍未到账，请带上交易单号联系客服。$b$),

('en', 'beta-features', 'beta_access', '{beta, preview, new feature, early access, test feature, not showing}', true,
 'I cannot see or open a beta feature',
$b$Beta features reach selected accounts step by step, so a friend may have one before you do.

If you were invited and still cannot open it:
1. Update the app to the latest version.
2. Check the feature is offered in your region and for your account type.
3. Sign out and in again, check your connection, or try another device.
4. Look at our announcements for known problems or maintenance.

Still missing? Contact us with the category "beta access" and include your app version and device. Places in a beta are never sold; ignore anyone offering one.$b$),

('zh', 'beta-features', 'beta_access', '{内测, beta, 测试功能, 新功能, 抢先体验, 看不到, 打不开}', true,
 '内测功能看不到或打不开',
$b$内测功能会分批开放给部分账户，所以朋友能用而您暂时看不到是正常的。

如果您已收到邀请但仍打不开：
1. 把应用更新到最新版本。
2. 确认该功能在您所在地区、对您的账户类型开放。
3. 退出后重新登录，检查网络，或者换一台设备试试。
4. 查看官方公告，确认是否有已知问题或正在维护。

还是不行？请联系客服，选择「内测功能」类型，并写明应用版本和设备型号。内测资格从不出售，遇到兜售内测名额的请不要理会。$b$),

('en', 'file-a-complaint', 'complaint', '{complain, complaint, unhappy, feedback, escalate, dissatisfied}', true,
 'How to make a complaint and what happens next',
$b$Open a ticket in the app with the category "complaint". Say what happened, when, and what you would like us to do; add the transaction reference or an earlier ticket if there is one.

What happens next:
1. You get a confirmation with a ticket number straight away.
2. A person, not an automatic reply, reviews the complaint and may ask you for details.
3. We tell you the outcome and what we are doing about it; urgent money or security matters are handled first.
4. You can rate the answer. Complaints and ratings are reviewed to improve the service and this help centre.$b$),

('zh', 'file-a-complaint', 'complaint', '{投诉, 不满意, 意见, 反馈, 建议}', true,
 '如何投诉，投诉后会怎样处理',
$b$在应用里提交工单，问题类型选「投诉」。写清发生了什么、什么时候，以及希望我们怎么处理；如有交易单号或之前的工单号，也请附上。

接下来：
1. 您会马上收到带工单号的确认。
2. 由人工客服（不是自动回复）核实投诉，必要时向您了解更多细节。
3. 我们会告诉您处理结果和改进措施；涉及资金或账户安全的紧急问题优先处理。
4. 您可以为处理结果打分。投诉和评价会被用来改进服务和本帮助中心。$b$),

('en', 'contact-human-agent', 'other', '{contact us, human, agent, live chat, customer service, phone, 24/7}', true,
 'Talk to a human agent, 24/7',
$b$People answer our support around the clock, every day of the year.

- In the app: **Me > Help > Contact us**, then choose the category that fits.
- Also through our website and our official social media accounts.

Most first replies arrive within five minutes; urgent problems (frozen accounts, suspicious activity, failed payments) are answered faster.

To get help faster, include the time, amount, error message and transaction reference. Agents never ask for your recovery phrase, private key, passwords or verification codes.$b$),

('zh', 'contact-human-agent', 'other', '{联系客服, 人工客服, 转人工, 在线客服, 客服电话}', true,
 '如何联系人工客服（24 小时）',
$b$我们的人工客服全年无休，24 小时在线。

- 应用内：**我的 > 帮助 > 联系客服**，再选择合适的问题类型。
- 也可以通过官网和官方社交媒体账号联系我们。

大多数咨询在五分钟内就会得到首次回复；账户冻结、可疑活动、付款失败等紧急问题回复更快。

想更快解决问题，请写明时间、金额、错误提示和交易单号。客服绝不会索要您的助记词、私钥、密码或验证码。$b$);
