Feature: Call transfer
  REFER (RFC 3515) with its implicit subscription: the transferee reports progress in sipfrag NOTIFYs and the
  transferor hangs up once the target answered. Attended transfer names the consultation call in Replaces
  (RFC 3891).

  Scenario: Bob transfers Alice to Carol without consulting
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    Given Carol uses OtterSoft phone
    When Alice calls Bob
    And Bob answers the phone
    When Bob transfers the call to Carol
    Then Alice receives REFER
    And Carol answers the phone
    And Bob's transfer succeeds
    And Bob receives NOTIFY
    And Bob has no call up
    And Alice and Carol talk for 2 seconds
    Then Carol hangs up the phone
    And Alice receives BYE

  Scenario: Bob transfers Alice to Carol after consulting her
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    Given Carol uses Squirrel350 phone
    When Alice calls Bob
    And Bob answers the phone
    When Bob transfers Alice to Carol after consulting
    Then Carol receives an INVITE with header Replaces containing to-tag
    And Bob has no call up
    And Alice and Carol talk for 2 seconds
    And Alice and Carol hear each other
    Then Alice hangs up the phone
    And Carol receives BYE
