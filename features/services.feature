Feature: PBX services
  Registration, Do Not Disturb, call forwarding, voicemail with message-waiting indication, and
  instant messages, through the system under test.

  Scenario: Registering and unregistering
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    Then Alice is registered
    When Alice unregisters
    Then Alice is not registered
    When Bob calls Alice
    Then the call fails with 404

  Scenario: Busy calls go to voicemail
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    And Bob rejects the call as busy
    Then Alice talks to voicemail for 2 seconds
    Then Alice hangs up the phone
    Then Bob has voicemail waiting
    And Bob's mailbox holds 1 message(s)

  Scenario: Unanswered calls go to voicemail
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    And Bob does not answer
    Then Alice talks to voicemail for 2 seconds
    And Bob receives CANCEL
    Then Alice hangs up the phone
    Then Bob has voicemail waiting

  Scenario: DND without a voicemail box is busy
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
      And Status is set to DND
    When Alice calls Bob
    Then the call fails with 486

  Scenario: Bob forwards his calls to Carol
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    Given Carol uses Chipmunk5000 phone
    And Bob forwards calls to Carol
    When Alice calls Bob
    Then Carol receives an INVITE with header Diversion containing bob
    And Carol answers the phone
    And Alice and Carol talk for 2 seconds
    Then Carol hangs up the phone
    And Alice receives BYE

  Scenario: Alice sends Bob a message
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice sends the message "lunch at noon?" to Bob
    Then Bob receives the message "lunch at noon?"
